"""A small world for the learning loop, on loopback: an OpenAI-compatible upstream whose light
model answers well except in German, a strong model that always answers well, and a judge that
grades the fake answers. The default router has no idea the light model is bad at German, so
the loop has something real to learn. Used by tests/learning and bench/learning_loop.py.

Models (upstream ids): ``light-1``, ``strong-1``, ``judge-1``. Knobs: ``judge_mode`` ("ok",
"garbage" for replies that are not JSON, "fail" for 500s), ``reference_fails`` (the strong model
answers 500), ``calls`` counts calls per model.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

from aiohttp import web

from .threaded_server import ThreadedServer

GERMAN = re.compile(
    r"\b(ich|wie|der|die|das|und|mein|meine|nicht|ist|bitte|kann|warum|für|mit)\b", re.I
)
GOOD, BAD = "GOOD answer: here is a clear, correct reply.", "BAD answer: sorry, unclear."


def is_german(text: str) -> bool:
    return len(GERMAN.findall(text)) >= 2


def true_quality(model: str, prompt: str) -> float:
    """What the judge will say about ``model``'s answer to ``prompt``, as stored quality."""
    if model.startswith("light") and is_german(prompt):
        return (2 - 1) / 9
    return (9 - 1) / 9


class LearningWorld(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.judge_mode = "ok"
        self.reference_fails = False
        self.calls: Counter[str] = Counter()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        self.calls[model] += 1
        messages = body.get("messages") or []
        user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = user.get("content") if isinstance(user.get("content"), str) else ""
        if model.startswith("judge"):
            if self.judge_mode == "fail":
                return web.json_response({"error": {"message": "judge down"}}, status=500)
            answer = text.split("## The answer to grade", 1)[-1]
            score = 9 if "GOOD" in answer else 2
            reply = (
                "no idea"
                if self.judge_mode == "garbage"
                else json.dumps({"score": score, "reason": "fake judge"})
            )
        elif model.startswith("strong"):
            if self.reference_fails:
                return web.json_response({"error": {"message": "strong down"}}, status=500)
            reply = GOOD
        else:
            reply = BAD if is_german(text) else GOOD
        usage = {"prompt_tokens": max(1, len(str(messages)) // 4), "completion_tokens": 12}
        usage["total_tokens"] = usage["prompt_tokens"] + 12
        if body.get("stream"):
            return await self._stream(request, model, reply, usage)
        return web.json_response(
            {
                "id": "chatcmpl-world",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def _stream(
        self, request: web.Request, model: str, reply: str, usage: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "chatcmpl-world", "object": "chat.completion.chunk", "model": model}
        for piece in (reply[:10], reply[10:]):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(end)}\n\n".encode())
        await response.write(
            f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        )
        await response.write(b"data: [DONE]\n\n")
        return response


def world_config(base_url: str, storage: str, **learning: Any) -> dict[str, Any]:
    """Two models at tier 1 / tier 3 prices, a judge, and one router with learning on."""

    def model(name: str, upstream: str, tier: int, pin: float, pout: float) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "base_url": base_url,
            "model": upstream,
            "tier": tier,
            "max_retries": 0,
            "price": {"input_per_mtok": pin, "output_per_mtok": pout},
        }

    return {
        "models": [
            model("light", "light-1", 1, 0.25, 1.25),
            model("strong", "strong-1", 3, 15, 75),
            model("judge", "judge-1", 2, 1, 4),
        ],
        "routers": [
            {
                "name": "auto",
                "models": ["light", "strong"],
                # wide enough that the default router sends help-desk prompts to the light
                # model, whatever the bundled router's exact predictions are
                "quality_tolerance": 0.5,
                "learning": {"judge": "judge", "sample_rate": 1.0, **learning},
            }
        ],
        "storage": storage,
    }
