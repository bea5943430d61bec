"""A fake Anthropic Messages API on loopback: real shapes, headers, statuses and SSE framing.

It checks what the real API checks first (``x-api-key``, ``anthropic-version``, ``model``,
``max_tokens``, ``messages``), records every request, and answers with text or, when tools are
offered and the last turn is not a tool result, a ``tool_use`` block. Failures are scripted with
``fail_next`` (see threaded_server.Failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from typing import Any

from aiohttp import web

from .threaded_server import Received, ThreadedServer, break_connection, write_event

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_response(status: int, message: str) -> web.Response:
    return web.json_response(error_body(status, message), status=status)


def _wants_tool(body: dict[str, Any]) -> bool:
    if not body.get("tools"):
        return False
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    if isinstance(content, list):
        return not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    return True


class FakeAnthropic(ThreadedServer):
    def __init__(self, api_key: str = "sk-ant-fake") -> None:
        super().__init__()
        self.api_key = api_key
        self.record = True  # benchmarks switch recording off to keep memory flat

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        return app

    def usage(self) -> dict[str, int]:
        k = self.knobs
        return {
            "input_tokens": k.input_tokens,
            "output_tokens": k.output_tokens,
            "cache_read_input_tokens": k.cache_read_tokens,
            "cache_creation_input_tokens": k.cache_write_tokens,
        }

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if self.record:
            self.received.append(Received(request.path, dict(request.headers), body, raw))
        if request.headers.get("x-api-key") != self.api_key:
            return error_response(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error_response(400, "anthropic-version: header is required")
        if not isinstance(body, dict):
            return error_response(400, "request body is not valid JSON")
        for required in ("model", "max_tokens", "messages"):
            if required not in body:
                return error_response(400, f"{required}: Field required")
        failure = self.next_failure()
        if isinstance(failure, int):
            return error_response(failure, f"scripted failure {failure}")
        if failure == "timeout":
            await asyncio.sleep(self.knobs.hang_s)
        if failure == "malformed":
            if not body.get("stream"):
                return web.json_response(
                    {"id": "msg_empty", "type": "message", "role": "assistant"}
                )
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b"event: message_start\ndata: {not json\n\n")
            await response.write(b'event: message_stop\ndata: {"type": "message_stop"}\n\n')
            await response.write_eof()
            return response
        if body.get("stream"):
            return await self._stream(request, body, failure)
        if failure == "break":
            response = web.StreamResponse(headers={"content-type": "application/json"})
            await response.prepare(request)
            await response.write(b'{"id": "msg_')
            await break_connection(request, response)
            return response
        return web.json_response(self._message(body))

    async def count_tokens(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        if self.record:
            self.received.append(Received(request.path, dict(request.headers), body, raw))
        if request.headers.get("x-api-key") != self.api_key:
            return error_response(401, "invalid x-api-key")
        if "max_tokens" in body:
            return error_response(400, "max_tokens: Extra inputs are not permitted")
        k = self.knobs
        return web.json_response(
            {"input_tokens": k.input_tokens + k.cache_read_tokens + k.cache_write_tokens}
        )

    def _content(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        if self.knobs.tool_call and _wants_tool(body):
            tool = body["tools"][0]
            block = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:20]}",
                "name": tool["name"],
                "input": self.knobs.tool_input,
            }
            return [block], "tool_use"
        return [*self._thinking(), {"type": "text", "text": self.knobs.text}], "end_turn"

    def _thinking(self) -> list[dict[str, Any]]:
        if not self.knobs.thinking:
            return []
        return [{"type": "thinking", "thinking": self.knobs.thinking, "signature": "sig-fake"}]

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        content, stop_reason = self._content(body)
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self.usage(),
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], failure: int | str | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await write_event(
                self, response, f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
            )

        message = self._message(body)
        start_usage = {**self.usage(), "output_tokens": 1}
        head = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        if self.knobs.omit_usage:
            del head["usage"]
        await send("message_start", {"type": "message_start", "message": head})
        await send("ping", {"type": "ping"})
        for index, block in enumerate(message["content"]):
            if block["type"] == "thinking":
                start = {"type": "thinking", "thinking": ""}
                await send(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
                for delta in (
                    {"type": "thinking_delta", "thinking": block["thinking"]},
                    {"type": "signature_delta", "signature": block["signature"]},
                ):
                    await send(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
            elif block["type"] == "text":
                await send(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                text = block["text"]
                pieces = [text[i : i + 8] for i in range(0, len(text), 8)]
                for n, piece in enumerate(pieces):
                    delta = {"type": "text_delta", "text": piece}
                    await send(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                    if n == 1 and failure in ("break", "stream_error"):
                        return await self._fail_stream(request, response, send, failure)
            else:
                start = {**block, "input": {}}
                await send(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
                arguments = json.dumps(block["input"])
                for i in range(0, len(arguments), 10):
                    delta = {"type": "input_json_delta", "partial_json": arguments[i : i + 10]}
                    await send(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                if failure in ("break", "stream_error"):
                    return await self._fail_stream(request, response, send, failure)
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {}
                if self.knobs.omit_usage
                else {"output_tokens": self.knobs.output_tokens},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        try:
            await response.write_eof()
        except ConnectionResetError:
            self.stream_outcomes.append("closed before end of body")
            return response
        self.stream_outcomes.append("complete")
        return response

    async def _fail_stream(
        self, request: web.Request, response: web.StreamResponse, send: Any, failure: str
    ) -> web.StreamResponse:
        if failure == "stream_error":
            await send("error", error_body(529, "Overloaded"))
            await response.write_eof()
        else:
            await break_connection(request, response)
        return response


def main() -> None:
    """Standalone, for benchmarks: ``python -m tests.fakes.anthropic_server --port 9200``."""
    parser = argparse.ArgumentParser(description="fake Anthropic Messages API (loopback)")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--api-key", default="sk-ant-fake")
    args = parser.parse_args()
    server = FakeAnthropic(api_key=args.api_key)
    server.record = False
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(server.make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
