"""A fake Bedrock runtime (Converse and ConverseStream) on loopback.

Like the real service it refuses requests without a SigV4 ``Authorization`` header (or a
Bedrock API key as ``Bearer``), and it *verifies* the signature with the secret it was given, so
a provider that signs the wrong bytes or path fails here as it would on AWS. Errors carry
``x-amzn-ErrorType`` and a ``{"message"}`` body; streams use the AWS event-stream framing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import uuid
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from gearshift.api.eventstream import encode_event, encode_exception

from .threaded_server import Received, ThreadedServer, break_connection, write_event

ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
PATH_RE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream)$")


def error_response(status: int, message: str, kind: str | None = None) -> web.Response:
    kind = kind or ERROR_TYPES.get(status, "InternalServerException")
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": f"{kind}:http://fake/"}
    )


def _wants_tool(body: dict[str, Any]) -> bool:
    if not (body.get("toolConfig") or {}).get("tools"):
        return False
    last = (body.get("messages") or [{}])[-1]
    return not any("toolResult" in block for block in last.get("content") or [])


class FakeBedrock(ThreadedServer):
    def __init__(
        self,
        access_key: str = "AKIDFAKEGEARSHIFT",
        secret_key: str = "fake-secret-key",
        api_key: str | None = None,
    ) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        self.api_key = api_key
        self.record = True  # benchmarks switch recording off to keep memory flat
        self.regions: list[str] = []  # region named in each accepted signature

    def make_app(self) -> web.Application:
        app = web.Application()
        # Catch-all: a model id may be an ARN whose "/" arrives encoded; match on the raw path.
        app.router.add_post("/{tail:.*}", self.handle)
        return app

    def usage(self) -> dict[str, int]:
        k = self.knobs
        total = k.input_tokens + k.output_tokens + k.cache_read_tokens + k.cache_write_tokens
        return {
            "inputTokens": k.input_tokens,
            "outputTokens": k.output_tokens,
            "totalTokens": total,
            "cacheReadInputTokens": k.cache_read_tokens,
            "cacheWriteInputTokens": k.cache_write_tokens,
        }

    def _check_auth(self, request: web.Request, raw: bytes) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if self.api_key is not None and auth == f"Bearer {self.api_key}":
            return None
        match = AUTH_RE.fullmatch(auth)
        if not match or "X-Amz-Date" not in request.headers:
            return error_response(
                403, "Missing Authentication Token", "UnrecognizedClientException"
            )
        if match["akid"] != self.access_key or match["service"] != "bedrock":
            return error_response(403, "The security token included in the request is invalid.")
        if match["sig"] != self._expected_signature(request, raw, match):
            return error_response(
                403,
                "The request signature we calculated does not match the signature you provided.",
                "InvalidSignatureException",
            )
        if self.record:
            self.regions.append(match["region"])
        return None

    def _expected_signature(self, request: web.Request, raw: bytes, match: re.Match[str]) -> str:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        signed = match["signed"].split(";")
        headers = {name: request.headers.get(name, "") for name in signed}
        url = f"http://{request.host}{request.raw_path}"
        aws_request = AWSRequest(method=request.method, url=url, data=raw, headers=headers)
        aws_request.context["timestamp"] = request.headers["X-Amz-Date"]
        token = request.headers.get("X-Amz-Security-Token")
        signer = SigV4Auth(
            Credentials(self.access_key, self.secret_key, token), "bedrock", match["region"]
        )
        canonical = signer.canonical_request(aws_request)
        return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if self.record:
            self.received.append(Received(request.raw_path, dict(request.headers), body, raw))
        denied = self._check_auth(request, raw)
        if denied is not None:
            return denied
        path = PATH_RE.match(request.raw_path.split("?", 1)[0])
        if path is None:
            return error_response(404, f"unknown operation {request.raw_path}", "UnknownOperation")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return error_response(400, "messages: a list of messages is required")
        model_id = unquote(path["model"])
        failure = self.next_failure()
        if isinstance(failure, int):
            return error_response(failure, f"scripted failure {failure}")
        if failure == "timeout":
            await asyncio.sleep(self.knobs.hang_s)
        if failure == "malformed":
            if path["op"] == "converse":
                return web.json_response({"stopReason": "end_turn", "usage": self.usage()})
            response = web.StreamResponse(
                headers={"content-type": "application/vnd.amazon.eventstream"}
            )
            await response.prepare(request)
            await response.write(encode_event("messageStart", b"{not json"))
            await response.write(encode_event("messageStop", b'{"stopReason": "end_turn"}'))
            await response.write_eof()
            return response
        if path["op"] == "converse-stream":
            return await self._stream(request, body, model_id, failure)
        if failure == "break":
            response = web.StreamResponse(headers={"content-type": "application/json"})
            await response.prepare(request)
            await response.write(b'{"output": ')
            await break_connection(request, response)
            return response
        content, stop = self._content(body)
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": self.usage(),
                "metrics": {"latencyMs": 12},
            },
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _content(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        if self.knobs.tool_call and _wants_tool(body):
            spec = body["toolConfig"]["tools"][0]["toolSpec"]
            use = {
                "toolUseId": f"tooluse_{uuid.uuid4().hex[:22]}",
                "name": spec["name"],
                "input": self.knobs.tool_input,
            }
            return [{"toolUse": use}], "tool_use"
        thinking = []
        if self.knobs.thinking:
            text = {"text": self.knobs.thinking, "signature": "sig-fake"}
            thinking = [{"reasoningContent": {"reasoningText": text}}]
        return [*thinking, {"text": self.knobs.text}], "end_turn"

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model_id: str, failure: Any
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "content-type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": str(uuid.uuid4()),
            }
        )
        await response.prepare(request)

        async def send(event: str, payload: dict[str, Any]) -> None:
            await write_event(self, response, encode_event(event, json.dumps(payload).encode()))

        content, stop = self._content(body)
        await send("messageStart", {"role": "assistant"})
        for index, block in enumerate(content):
            if "reasoningContent" in block:
                reasoning = block["reasoningContent"]["reasoningText"]
                for part in ({"text": reasoning["text"]}, {"signature": reasoning["signature"]}):
                    delta = {"reasoningContent": part}
                    await send("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
            elif "text" in block:
                text = block["text"]
                for n, i in enumerate(range(0, len(text), 8)):
                    delta = {"text": text[i : i + 8]}
                    await send("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
                    if n == 1 and failure in ("break", "stream_error"):
                        return await self._fail_stream(request, response, failure)
            else:
                use = block["toolUse"]
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                await send("contentBlockStart", {"contentBlockIndex": index, "start": start})
                arguments = json.dumps(use["input"])
                for i in range(0, len(arguments), 10):
                    delta = {"toolUse": {"input": arguments[i : i + 10]}}
                    await send("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
                if failure in ("break", "stream_error"):
                    return await self._fail_stream(request, response, failure)
            await send("contentBlockStop", {"contentBlockIndex": index})
        await send("messageStop", {"stopReason": stop})
        if not self.knobs.omit_usage:
            await send("metadata", {"usage": self.usage(), "metrics": {"latencyMs": 15}})
        try:
            await response.write_eof()
        except ConnectionResetError:
            self.stream_outcomes.append("closed before end of body")
            return response
        self.stream_outcomes.append("complete")
        return response

    async def _fail_stream(
        self, request: web.Request, response: web.StreamResponse, failure: str
    ) -> web.StreamResponse:
        if failure == "stream_error":
            payload = json.dumps({"message": "Too many requests, please wait."}).encode()
            await response.write(encode_exception("throttlingException", payload))
            await response.write_eof()
        else:
            await break_connection(request, response)
        return response


def main() -> None:
    """Standalone, for benchmarks: ``python -m tests.fakes.bedrock_server --port 9300``."""
    parser = argparse.ArgumentParser(description="fake Bedrock runtime (loopback)")
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--access-key", default="AKIDFAKEGEARSHIFT")
    parser.add_argument("--secret-key", default="fake-secret-key")
    args = parser.parse_args()
    server = FakeBedrock(access_key=args.access_key, secret_key=args.secret_key)
    server.record = False
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(server.make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
