"""The decision rule: cheapest candidate within ``quality_tolerance`` of the best predicted quality.

For one request: extract features, predict quality per candidate, drop candidates that cannot
serve it (policy ``allowed``, context window, tools, images, JSON mode), take the best predicted
quality among the rest, and choose the cheapest whose prediction is at least ``best − tolerance``.
Ties go to the cheaper model, then the lower tier, then the name, so a decision is deterministic.
The rule reads the predictions rounded to ``PREDICTION_DECIMALS``, the numbers the decision (and
so the ledger row) records: a replay of recorded rows (the targets controller, the rollups'
"within tolerance", an audit) reaches exactly the decision the router made.
The fallback order is the other eligible candidates by predicted quality (best first), with the
router's ``fallback`` model last. Everything per-model (ability, prices, context, capabilities) is
resolved when the router is built, so ``decide`` does no look-ups.

Stickiness (``RouterConfig.sticky``): a conversation keeps the model its first routed turn got,
as long as that model is still eligible. A conversation is identified by
``metadata["conversation_id"]`` when the client sends one, else by the system prompt and first
user message; the map is in-process and bounded (LRU), so replicas do not share it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence

from gearshift.chat import ChatRequest, ImagePart
from gearshift.errors import InvalidRequest
from gearshift.routing.decision import Decision
from gearshift.routing.features import extract
from gearshift.routing.predictors import Predictor
from gearshift.routing.profiles import ModelProfile
from gearshift.routing.tokens import estimate_request_tokens

__all__ = ["DEFAULT_COMPLETION_TOKENS", "Router"]

DEFAULT_COMPLETION_TOKENS = 400  # expected answer length when the request does not cap it
STICKY_CAPACITY = 10_000
# Predicted qualities are decided on, and recorded, to this many decimals (see the module text).
PREDICTION_DECIMALS = 4
_UNPRICED = float("inf")


class Router:
    """A ``RouterEngine`` (see ``gearshift.routing.decision``)."""

    def __init__(
        self,
        name: str,
        profiles: Sequence[ModelProfile],
        predictor: Predictor,
        *,
        tolerance: float = 0.1,
        fallback: ModelProfile | None = None,
        sticky: bool = True,
    ) -> None:
        if not profiles:
            raise InvalidRequest(f"router {name!r} has no candidate models")
        self.name = name
        self.profiles = tuple(profiles)
        self.models = tuple(p.name for p in profiles)
        self.predictor = predictor
        self.tolerance = tolerance
        self.fallback = fallback
        self.sticky = sticky
        self._sticky: OrderedDict[str, str] = OrderedDict()
        # the counterfactual for savings: highest ability, the pricier on a tie
        self.most_capable = max(
            self.profiles, key=lambda p: (p.ability, p.input_per_token + p.output_per_token)
        ).name

    # ---- the rule ------------------------------------------------------------------------

    def decide(
        self,
        request: ChatRequest,
        *,
        tolerance: float | None = None,
        allowed: Collection[str] | None = None,
    ) -> Decision:
        features = extract(request)
        difficulty, raw = self.predictor.predict(features, self.profiles)
        qualities = [round(q, PREDICTION_DECIMALS) for q in raw]
        tol = self.tolerance if tolerance is None else min(max(tolerance, 0.0), 1.0)
        prompt_tokens = estimate_request_tokens(request)
        max_tokens = request.max_tokens or 0
        completion = (
            min(max_tokens, DEFAULT_COMPLETION_TOKENS)
            if max_tokens
            else (DEFAULT_COMPLETION_TOKENS)
        )
        needs = _needs(request)
        excluded: dict[str, str] = {}
        eligible: list[int] = []
        costs: dict[str, float] = {}
        for i, p in enumerate(self.profiles):
            why = _why_not(p, prompt_tokens + max_tokens, needs, allowed)
            if why:
                excluded[p.name] = why
                continue
            eligible.append(i)
            if p.priced:  # an unknown price is no cost: it stays out (and ranks last, below)
                costs[p.name] = p.expected_cost(prompt_tokens, completion)
        predicted = {p.name: q for p, q in zip(self.profiles, qualities, strict=True)}
        if not eligible:
            detail = "; ".join(f"{m}: {why}" for m, why in excluded.items())
            raise InvalidRequest(
                f"no model of router {self.name!r} can serve this request ({detail})"
            )

        def cost_key(i: int) -> tuple[float, int, str]:
            p = self.profiles[i]
            return (costs[p.name] if p.priced else _UNPRICED, p.tier, p.name)

        best = max(qualities[i] for i in eligible)
        floor = best - tol - 1e-9
        within = [i for i in eligible if qualities[i] >= floor]
        chosen_i = min(within, key=cost_key)
        reason = (
            f"best predicted quality {best:.2f}; tolerance {tol:.2f} -> cheapest model at or above "
            f"{max(best - tol, 0.0):.2f}: {self.profiles[chosen_i].name}"
        )
        key = _conversation_key(request) if self.sticky else None
        if key is not None:
            previous = self._sticky.get(key)
            if previous is not None and _has_assistant_turn(request):
                for i in eligible:
                    if self.profiles[i].name == previous and i != chosen_i:
                        chosen_i = i
                        reason = f"sticky: conversation stays on {previous} (routed there earlier)"
                        break
            self._remember(key, self.profiles[chosen_i].name)

        rest = [i for i in eligible if i != chosen_i]
        rest.sort(key=lambda i: (-qualities[i], *cost_key(i)))
        ranked = [self.profiles[chosen_i].name] + [self.profiles[i].name for i in rest]
        fb = self.fallback
        if fb is not None and fb.name != ranked[0]:
            if fb.name in ranked:
                ranked.remove(fb.name)
                ranked.append(fb.name)
            elif not _why_not(fb, prompt_tokens + max_tokens, needs, None):
                ranked.append(fb.name)
                if fb.priced:
                    costs[fb.name] = fb.expected_cost(prompt_tokens, completion)
        return Decision(
            router=self.name,
            chosen=ranked[0],
            ranked=tuple(ranked),
            predicted=predicted,
            difficulty=round(difficulty, PREDICTION_DECIMALS),
            tolerance=tol,
            est_cost_usd=costs,
            most_capable=self.most_capable,
            kind=features.kind,
            kind_confidence=round(float(features.kind_probs.max()), 3),
            reason=reason,
            excluded=excluded,
        )

    def _remember(self, key: str, model: str) -> None:
        self._sticky[key] = model
        self._sticky.move_to_end(key)
        if len(self._sticky) > STICKY_CAPACITY:
            self._sticky.popitem(last=False)


def _needs(request: ChatRequest) -> tuple[bool, bool, bool]:
    tools = bool(request.tools)
    vision = any(isinstance(p, ImagePart) for m in request.messages for p in m.content)
    fmt = request.response_format
    json_mode = bool(fmt) and str(fmt.get("type", "")).startswith("json") if fmt else False
    return tools, vision, json_mode


def _why_not(
    p: ModelProfile,
    tokens_needed: int,
    needs: tuple[bool, bool, bool],
    allowed: Collection[str] | None,
) -> str:
    if allowed is not None and p.name not in allowed:
        return "not allowed by policy for this request"
    if p.context_window is not None and tokens_needed > p.context_window:
        return (
            f"prompt needs about {tokens_needed} tokens with max_tokens; "
            f"context window is {p.context_window}"
        )
    tools, vision, json_mode = needs
    if tools and not p.tools:
        return "request has tools; model does not support tool calls"
    if vision and not p.vision:
        return "request has images; model does not support vision"
    if json_mode and not p.json_mode:
        return "request asks for JSON output; model has no JSON mode"
    return ""


def _has_assistant_turn(request: ChatRequest) -> bool:
    return any(m.role == "assistant" for m in request.messages)


def _conversation_key(request: ChatRequest) -> str | None:
    explicit = request.metadata.get("conversation_id") if request.metadata else None
    if explicit:
        return "id:" + explicit
    first_user = next((m for m in request.messages if m.role == "user"), None)
    if first_user is None:
        return None
    return "h:" + str(hash((request.system_text()[:2000], first_user.text()[:2000])))
