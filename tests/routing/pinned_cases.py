"""Routing decisions pinned before a speed-up, to prove the speed-up changed none of them.

``cases()`` builds a fixed, varied set of requests (every other prompt of the bundled kind set as
one turn, then system prompts, multi-turn conversations, few-shot blocks, tools, images, JSON mode,
``max_tokens``, non-ASCII text and 20 to 8,000-token prompts); ``observe()`` records, for each,
what the default router and its feature extractor produce. ``data/pinned_decisions.json`` holds
``observe()``'s output computed by the code *before* the serving-speed work (issue 13/15's
overhead bars), with the digests of the bundled models it was computed with;
``test_pinned_decisions.py`` recomputes and compares.

Regenerate (only when the bundled models or the features change on purpose):

    .venv/bin/python -m tests.routing.pinned_cases > tests/routing/data/pinned_decisions.json
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from importlib import resources
from typing import Any

from gearshift.chat import ChatRequest, ImagePart, Message, TextPart, Tool
from gearshift.routing import router_for_models
from gearshift.routing.engine import Router
from gearshift.routing.features import extract

ROUTER_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku")
TOLERANCES = (0.0, 0.05, 0.3)  # besides the router's own 0.1: which model each one picks

_SENTENCES = (
    "The quarterly report shows revenue grew in every region except the north-east.",
    "Write a function that merges two sorted lists without using the built-in sort.",
    "Explain step by step why the derivative of x squared is two x.",
    "Our customer says the invoice total does not match the purchase order.",
    "Summarise the meeting notes below in three bullet points for the leadership team.",
    "If a train travels 120 km in 1.5 hours, what is its average speed in m/s?",
    "Le client demande un remboursement pour la commande 4471 livrée en retard.",
    "Compare the trade-offs between optimistic and pessimistic locking in databases.",
    "```python\ndef area(r):\n    return 3.14159 * r ** 2\n```",
    "Solve for x: 3x^2 - 12x + 9 = 0, and show \\frac{-b}{2a}.",
    "顧客は請求書の金額が注文書と一致しないと言っています。",
    "A) 12\nB) 15\nC) 18\nD) 21",
)


def _user(text: str) -> Message:
    return Message(role="user", content=[TextPart(text)])


def _long_prompt(tokens: int, rng: random.Random) -> str:
    words: list[str] = []
    while len(" ".join(words)) < tokens * 4:
        words.extend(rng.choice(_SENTENCES).split(" "))
    return " ".join(words)[: tokens * 4] + "\n\nQuestion: what should we do next, and why?"


def _labelled_prompts() -> list[str]:
    data = resources.files("gearshift.routing") / "data" / "kinds_labelled.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def cases() -> list[tuple[str, ChatRequest]]:
    """(case id, request), in a fixed order."""
    out: list[tuple[str, ChatRequest]] = []
    prompts = _labelled_prompts()
    for i, text in enumerate(prompts[::2]):  # every other one: a fixture of a few hundred kB
        out.append((f"kind-set-{i:04d}", ChatRequest(model="auto", messages=[_user(text)])))
    rng = random.Random(15)
    for i in range(40):
        a, b = rng.sample(prompts, 2)
        system = rng.choice(
            ["You are a helpful assistant.", "Answer in French.", "You are a senior Go reviewer."]
        )
        messages = [Message(role="system", content=[TextPart(system)]), _user(a)]
        if i % 2:
            messages += [Message(role="assistant", content=[TextPart(b[:200])]), _user(b)]
        req = ChatRequest(model="auto", messages=messages)
        if i % 5 == 0:
            req.tools = [Tool(name="lookup", description="look a thing up")]
        if i % 7 == 0:
            req.response_format = {"type": "json_object"}
        if i % 3 == 0:
            req.max_tokens = rng.choice([16, 300, 4000])
        if i % 11 == 0:
            req.messages[-1].content.append(ImagePart(url="https://example.com/a.png"))
        out.append((f"conversation-{i:02d}", req))
    for i in range(20):  # few-shot blocks: worked examples, then the real question
        shots = "\n\n".join(
            f"Question: {rng.choice(prompts)}\nAnswer: {rng.choice(_SENTENCES)}" for _ in range(4)
        )
        text = f"{shots}\n\nQuestion: {rng.choice(prompts)}\nAnswer:"
        out.append((f"few-shot-{i:02d}", ChatRequest(model="auto", messages=[_user(text)])))
    for tokens in (20, 500, 2000, 8000):
        for i in range(5):
            text = _long_prompt(tokens, rng)
            out.append((f"long-{tokens}-{i}", ChatRequest(model="auto", messages=[_user(text)])))
    for i, text in enumerate(_SENTENCES):
        out.append((f"sentence-{i:02d}", ChatRequest(model="auto", messages=[_user(text)])))
    return out


def pinned_router() -> Router:
    return router_for_models(list(ROUTER_MODELS))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def observe(router: Router, request: ChatRequest) -> dict[str, Any]:
    """What the router and the feature extractor make of one request."""
    features = extract(request)
    difficulty, qualities = router.predictor.predict(features, router.profiles)
    decision = router.decide(request)
    return {
        # model-independent: the text features, exactly (repr keeps every bit of a float)
        "dense": _digest(repr(features.dense)),
        "tokens": _digest("\n".join(sorted(features.tokens))),
        # the bundled models' outputs at full precision, then the decision as served
        "kind_probs": [float(p) for p in features.kind_probs],
        "difficulty_raw": difficulty,
        "qualities_raw": qualities,
        "chosen": decision.chosen,
        "ranked": list(decision.ranked),
        "predicted": decision.predicted,
        "difficulty": decision.difficulty,
        "kind": decision.kind,
        "kind_confidence": decision.kind_confidence,
        "est_cost_usd": decision.est_cost_usd,
        "reason": decision.reason,
        "excluded": decision.excluded,
        "by_tolerance": [router.decide(request, tolerance=t).chosen for t in TOLERANCES],
    }


def model_digests() -> dict[str, str]:
    data = resources.files("gearshift.routing") / "data"
    return {
        name: hashlib.sha256((data / name).read_bytes()).hexdigest()
        for name in ("default_router.npz", "kinds.npz", "potion_base_8m.npz")
    }


def main() -> None:
    router = pinned_router()
    # Sticky routing would let an earlier case's choice decide a later one: each case is
    # observed on its own.
    router.sticky = False
    pinned = {
        "models": model_digests(),
        "router_models": list(ROUTER_MODELS),
        "cases": {cid: observe(router, req) for cid, req in cases()},
    }
    # one case a line, so a changed decision shows as a one-line diff
    lines = [
        f"{json.dumps(cid)}: {json.dumps(obs, sort_keys=True)}"
        for cid, obs in pinned.pop("cases").items()
    ]
    head = json.dumps(pinned, sort_keys=True)[:-1]
    sys.stdout.write(head + ', "cases": {\n' + ",\n".join(lines) + "\n}}\n")


if __name__ == "__main__":
    main()
