"""``gearshift audit LOG --verify N --config FILE``: measured, not only predicted, quality.

N prompts are drawn from the log (a seeded reservoir sample over the prompts the router would move
to another model). Each is replayed on the model it was logged with and on the model the router
picks, and a judge grades each answer in its own call (the judge contract of the learning loop,
``gearshift.learning.judge``). The report then shows measured quality retained beside the
predicted one. Both models and the judge must be configured in ``--config`` (providers, keys);
the worst-case cost of the verification is printed before any call is made.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gearshift.chat import ChatRequest, Message, TextPart, Usage
from gearshift.errors import ConfigError, GearshiftError

if TYPE_CHECKING:
    from gearshift.audit.entry import LogEntry
    from gearshift.config import ModelConfig, RouterConfig, Settings
    from gearshift.providers.base import Provider

# Completion cap of each replayed call: bounds the worst case printed before the run.
REPLAY_MAX_TOKENS = 1024
CONCURRENCY = 4
SAFETY = 1.5


@dataclass(slots=True)
class Pick:
    messages: list[dict[str, Any]]
    logged: str  # configured name of the logged model
    routed: str


def _request(messages: list[dict[str, Any]], model: str) -> ChatRequest:
    out = [
        Message(role=m["role"], content=[TextPart(str(m.get("content") or ""))])
        for m in messages
        if m.get("role") in ("system", "user", "assistant")
    ]
    return ChatRequest(model=model, messages=out, max_tokens=REPLAY_MAX_TOKENS, temperature=0.0)


def sample_moved(
    entries: Iterable[LogEntry],
    settings: Settings,
    router: RouterConfig,
    n: int,
    *,
    default_model: str | None,
    seed: int = 0,
) -> tuple[list[Pick], int]:
    """Up to ``n`` prompts the router moves off their logged model (reservoir sample), and how
    many such prompts the log holds."""
    from gearshift.audit.candidates import match_candidate
    from gearshift.routing import build_router

    engine = build_router(settings, router)
    configured = [m.name for m in settings.models]
    rng = random.Random(seed)
    picks: list[Pick] = []
    moved = 0
    for entry in entries:
        messages = entry.message_list()
        logged_name = entry.model or default_model
        if not messages or not logged_name:
            continue
        logged = match_candidate(logged_name, configured)
        if logged is None:
            raise ConfigError(
                f"--verify replays prompts on their logged model, but {logged_name!r} is not a "
                "model in --config: add it under models: (provider, key) and run again"
            )
        decision = engine.decide(_request(messages, router.name))
        if decision.chosen == logged:
            continue
        moved += 1
        pick = Pick(messages, logged, decision.chosen)
        if len(picks) < n:
            picks.append(pick)
        else:
            j = rng.randrange(moved)
            if j < n:
                picks[j] = pick
    return picks, moved


class Verifier:
    def __init__(self, settings: Settings, judge: str) -> None:
        from gearshift.pricing import Pricer

        model = settings.model(judge)
        if model is None:
            raise ConfigError(f"--judge {judge!r} is not a model in --config")
        self.settings = settings
        self.judge = model
        self.pricer = Pricer.from_settings(settings)
        self._providers: dict[tuple[str, str | None], Provider] = {}
        self.cost = Decimal(0)
        self.unparsable = 0
        self.failed = 0

    def _price(self, model: ModelConfig, usage: Usage) -> Decimal:
        cost: Decimal = self.pricer.cost(model, usage).cost_usd
        return cost

    def worst_case(self, picks: list[Pick]) -> Decimal:
        from gearshift.learning.judge import JUDGE_MAX_TOKENS, MAX_ANSWER_CHARS
        from gearshift.routing.tokens import estimate_request_tokens

        total = Decimal(0)
        for pick in picks:
            tokens = int(estimate_request_tokens(_request(pick.messages, "x")) * SAFETY) + 64
            for name in (pick.logged, pick.routed):
                model = self.settings.model(name)
                assert model is not None
                total += self._price(model, Usage(tokens, REPLAY_MAX_TOKENS))
                judged = tokens + MAX_ANSWER_CHARS // 2 + 300
                total += self._price(self.judge, Usage(judged, JUDGE_MAX_TOKENS))
        return total

    def _provider(self, model: ModelConfig) -> Provider:
        from gearshift.providers.base import provider_class

        key = (model.provider, model.base_url)
        if key not in self._providers:
            cls = provider_class(model.provider)
            self._providers[key] = cls(base_url=model.base_url)  # type: ignore[call-arg]
        return self._providers[key]

    async def _call(self, model: ModelConfig, request: ChatRequest) -> str | None:
        try:
            response = await self._provider(model).complete(request, model)
        except GearshiftError as exc:
            self.failed += 1
            print(f"gearshift audit --verify: {model.name} failed: {exc.message}", file=sys.stderr)
            return None
        self.cost += self._price(model, response.usage)
        return response.text()

    async def _score(self, pick: Pick, name: str) -> float | None:
        from gearshift.learning.judge import JudgeReplyError, judge_request, parse_judge_reply

        model = self.settings.model(name)
        assert model is not None
        request = _request(pick.messages, model.name)
        answer = await self._call(model, request)
        if answer is None:
            return None
        grading = judge_request(
            request,
            answer,
            judge_model=self.judge.name,
            json_mode=self.judge.capabilities.json_mode,
        )
        reply = await self._call(self.judge, grading)
        if reply is None:
            return None
        try:
            return parse_judge_reply(reply)
        except JudgeReplyError:
            self.unparsable += 1
            return None

    async def run(self, picks: list[Pick]) -> list[tuple[float, float]]:
        """(logged quality, routed quality) for each pick both answers of which were graded."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(pick: Pick) -> tuple[float, float] | None:
            async with gate:
                logged = await self._score(pick, pick.logged)
                routed = await self._score(pick, pick.routed)
            return None if logged is None or routed is None else (logged, routed)

        try:
            results = await asyncio.gather(*(one(p) for p in picks))
        finally:
            for provider in self._providers.values():
                await provider.aclose()
        return [r for r in results if r is not None]


def verify(
    entries: Iterable[LogEntry],
    settings: Settings,
    router: RouterConfig,
    n: int,
    *,
    judge: str | None,
    default_model: str | None,
    moved_pct: float | None,
) -> dict[str, Any]:
    """The report's ``verification`` block."""
    name = judge or (router.learning.judge if router.learning else None)
    if name is None:
        raise ConfigError("--verify needs a judge: --judge MODEL, or learning.judge on the router")
    verifier = Verifier(settings, name)
    picks, moved = sample_moved(entries, settings, router, n, default_model=default_model)
    worst = verifier.worst_case(picks)
    print(
        f"gearshift audit --verify: {len(picks)} of {moved:,} moved prompts, 4 calls each "
        f"(logged model, routed model, two judge calls): at most ${worst:.4f}",
        file=sys.stderr,
    )
    graded = asyncio.run(verifier.run(picks)) if picks else []
    logged_mean = sum(q for q, _ in graded) / len(graded) if graded else None
    routed_mean = sum(q for _, q in graded) / len(graded) if graded else None
    retained_moved = routed_mean / logged_mean if logged_mean and routed_mean is not None else None
    # Prompts the router keeps on their logged model retain all of their quality.
    overall = None
    if retained_moved is not None and moved_pct is not None:
        share = moved_pct / 100.0
        overall = (1 - share) + share * retained_moved
    return {
        "prompts": len(picks),
        "graded": len(graded),
        "moved_in_log": moved,
        "judge": name,
        "unparsable": verifier.unparsable,
        "failed_calls": verifier.failed,
        "worst_case_cost_usd": float(worst),
        "cost_usd": float(verifier.cost),
        "measured_quality_logged": None if logged_mean is None else round(logged_mean, 4),
        "measured_quality_routed": None if routed_mean is None else round(routed_mean, 4),
        "measured_retained_on_moved_pct": None
        if retained_moved is None
        else round(100 * retained_moved, 1),
        "measured_retained_pct": None if overall is None else round(100 * overall, 1),
    }


def quality_note(block: dict[str, Any]) -> str:
    """The report's note on quality once ``--verify`` ran: what was measured, and on what."""
    graded, judge = block["graded"], block["judge"]
    if not graded:
        return (
            f"Quality figures are the router's predictions: --verify graded none of its "
            f"{block['prompts']} sampled prompt(s) ({block['failed_calls']} failed call(s), "
            f"{block['unparsable']} unparsable judge repl(ies))."
        )
    measured = f"{graded} moved prompt(s) replayed on both models and graded by {judge}"
    overall, on_moved = block["measured_retained_pct"], block["measured_retained_on_moved_pct"]
    if overall is not None:
        measured += f": {overall:.1f}% of quality retained"
        if on_moved is not None:
            measured += f" ({on_moved:.1f}% on the moved prompts)"
    return (
        f"Measured quality retained comes from {measured}, ${block['cost_usd']:.4f}; "
        "the other quality figures are the router's predictions."
    )
