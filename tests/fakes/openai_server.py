"""A fake OpenAI-compatible Chat Completions server on loopback, for tests and benchmarks.

Real shapes, statuses and SSE framing. It records every request (``received``) so tests can assert
what the upstream got, and it is steered through ``knobs`` and scripted failures:

- ``fail_next(500)`` / ``fail_next(429, times=3)``: answer the next requests with that status;
- ``fail_next("timeout")``: hold the request ``knobs.hang_s`` seconds without answering;
- ``fail_next("break")``: start answering, then drop the connection (mid-stream for streams);
- ``knobs.fail_models = {"large-2025": 500}``: always fail for one upstream model id;
- ``knobs.latency_s``: answer after this delay; ``knobs.chunk_delay_s``: pause between chunks;
- ``knobs.cached_tokens`` / ``knobs.reasoning_tokens``: usage details as OpenAI reports them;
- ``knobs.required_key``: demand ``Authorization: Bearer <key>`` (401 otherwise).

Offered tools are answered with a tool call unless the last message is a tool result. ``POST
/v1/responses`` is a small stateful Responses endpoint (non-streamed) for pass-through tests.

Run standalone for benchmarks: ``python -m tests.fakes.openai_server --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .threaded_server import Failure, Received, ThreadedServer, break_connection


@dataclass
class OpenAIKnobs:
    text: str = "Hello from the fake OpenAI provider."
    prompt_tokens: int = 30  # all prompt tokens, cached included (OpenAI's convention)
    completion_tokens: int = 12  # reasoning included
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    hang_s: float = 5.0
    tool_name: str | None = None  # tool to call; defaults to the first one offered
    tool_arguments: str = '{"city": "Paris"}'
    required_key: str | None = None
    fail_models: dict[str, Failure] = field(default_factory=dict)
    omit_usage: bool = False  # an old vLLM that ignores stream_options.include_usage
    retry_after: str | None = None  # Retry-After header on scripted 429s


class FakeOpenAIServer(ThreadedServer):
    def __init__(self, *, record: bool = True) -> None:
        super().__init__()
        self.okn = OpenAIKnobs()
        self.record = record  # benchmarks switch recording off to keep memory flat
        self.count = 0
        self.in_flight = 0  # chat requests being answered now, and the most at once
        self.max_in_flight = 0
        self.streams_abandoned = 0  # streams whose caller closed the connection mid-way
        self.responses_turns: dict[str, int] = {}  # Responses ids answered -> turn number

    def reset(self) -> None:
        super().reset()
        self.okn = OpenAIKnobs()
        self.count = 0
        self.max_in_flight = 0
        self.streams_abandoned = 0

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received]

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _embeddings(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        if self.record:
            self.received.append(Received(request.path, dict(request.headers), body, raw))
        failure = self.next_failure()
        if isinstance(failure, int):
            return _error(failure, f"scripted failure {failure}")
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        tokens = self.okn.prompt_tokens
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.25, -0.5, float(i)]}
                    for i in range(len(items))
                ],
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _responses(self, request: web.Request) -> web.Response:
        """A stateful Responses endpoint (non-streamed): each answer names the turn, counting
        the turns chained through previous_response_id, which must name one of its answers."""
        raw = await request.read()
        body = json.loads(raw)
        if self.record:
            self.received.append(Received(request.path, dict(request.headers), body, raw))
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.responses_turns:
            return _error(400, f"Previous response with id '{previous}' not found.")
        turn = self.responses_turns.get(previous, 0) + 1
        response_id = f"resp_fake{len(self.responses_turns) + 1}"
        self.responses_turns[response_id] = turn
        knobs = self.okn
        text = f"{knobs.text} (turn {turn})"
        return web.json_response(
            {
                "id": response_id,
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": body.get("model"),
                "output": [
                    {
                        "type": "message",
                        "id": f"msg_{response_id}",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}],
                    }
                ],
                "usage": {
                    "input_tokens": knobs.prompt_tokens,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": knobs.completion_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": knobs.prompt_tokens + knobs.completion_tokens,
                },
                "previous_response_id": previous,
                "store": True,
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer_chat(request)
        finally:
            self.in_flight -= 1

    async def _answer_chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.count += 1
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if self.record:
            self.received.append(Received(request.path, dict(request.headers), body, raw))
        knobs = self.okn
        expected = f"Bearer {knobs.required_key}"
        if knobs.required_key is not None and request.headers.get("Authorization") != expected:
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            return _error(400, "'model' and 'messages' are required.")
        failure = self.next_failure()
        if failure is None:
            failure = knobs.fail_models.get(body["model"])
        if isinstance(failure, int):
            response = _error(failure, f"scripted failure {failure}")
            if failure == 429 and knobs.retry_after is not None:
                response.headers["Retry-After"] = knobs.retry_after
            return response
        if failure == "timeout":
            await asyncio.sleep(knobs.hang_s)
            return _error(504, "too late")
        if failure == "malformed":
            if not body.get("stream"):
                return web.json_response({"id": "chatcmpl-empty", "object": "chat.completion"})
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b'data: {"id": "chatcmpl-x", "choi\n\ndata: [DONE]\n\n')
            await response.write_eof()
            return response
        if knobs.latency_s:
            await asyncio.sleep(knobs.latency_s)
        call = _tool_call(body, knobs)
        if body.get("stream"):
            try:
                return await self._stream(request, body, call, failure == "break")
            except (ConnectionError, asyncio.CancelledError):
                # The caller went away mid-stream: what a gateway does to cancel generation.
                self.streams_abandoned += 1
                raise
        if failure == "break":
            response = web.StreamResponse(status=200)
            response.content_length = 500
            await response.prepare(request)
            await response.write(b'{"id": "chatcmpl-x", "choi')
            await break_connection(request, response)
            return response
        message: dict[str, Any] = {"role": "assistant", "content": None if call else knobs.text}
        if call:
            message["tool_calls"] = [call]
        return web.json_response(
            {
                "id": f"chatcmpl-fake{self.count}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if call else "stop",
                    }
                ],
                "usage": _usage(knobs),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], call: dict[str, Any] | None, brk: bool
    ) -> web.StreamResponse:
        knobs = self.okn
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        base = {
            "id": f"chatcmpl-fake{self.count}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await response.write(
                b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"
            )
            if knobs.chunk_delay_s:
                await asyncio.sleep(knobs.chunk_delay_s)

        await send(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        if call:
            fn = call["function"]
            first = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": ""},
            }
            await send([{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}])
            half = len(fn["arguments"]) // 2
            for piece in (fn["arguments"][:half], fn["arguments"][half:]):
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                await send([{"index": 0, "delta": delta, "finish_reason": None}])
        else:
            words = knobs.text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                if brk and i == 1:
                    await break_connection(request, response)
                    return response
        await send([{"index": 0, "delta": {}, "finish_reason": "tool_calls" if call else "stop"}])
        options = body.get("stream_options") or {}
        if options.get("include_usage") and not knobs.omit_usage:
            await send([], usage=_usage(knobs))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _usage(knobs: OpenAIKnobs) -> dict[str, Any]:
    return {
        "prompt_tokens": knobs.prompt_tokens,
        "completion_tokens": knobs.completion_tokens,
        "total_tokens": knobs.prompt_tokens + knobs.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": knobs.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": knobs.reasoning_tokens,
            "audio_tokens": 0,
        },
    }


def _tool_call(body: dict[str, Any], knobs: OpenAIKnobs) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    if not tools:
        return None
    last = (body.get("messages") or [{}])[-1]
    if isinstance(last, dict) and last.get("role") == "tool":
        return None
    name = knobs.tool_name or tools[0].get("function", {}).get("name", "tool")
    return {
        "id": "call_fake1",
        "type": "function",
        "function": {"name": name, "arguments": knobs.tool_arguments},
    }


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_error"}
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": kind.get(status, "server_error"),
                "param": None,
                "code": code,
            }
        },
        status=status,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server (loopback)")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="between SSE chunks")
    args = parser.parse_args()
    server = FakeOpenAIServer(record=False)
    server.okn.latency_s = args.latency_ms / 1000.0
    server.okn.chunk_delay_s = args.chunk_delay_ms / 1000.0
    app = server.make_app()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
