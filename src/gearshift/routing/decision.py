"""The routing contract the gateway, audit and policy code call (the routing package implements it).

A ``RouterEngine`` turns a ``ChatRequest`` into a ``Decision``: predicted quality per candidate,
the chosen model (cheapest within ``quality_tolerance`` of the best that fits the constraints),
the fallback order, and a human explanation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from gearshift.chat import ChatRequest


@dataclass(slots=True, frozen=True)
class Decision:
    router: str
    chosen: str  # configured model name
    ranked: tuple[str, ...]  # chosen first, then the fallback order
    predicted: dict[str, float]  # model name -> predicted quality in [0, 1]
    difficulty: float  # probability a strong model is needed, in [0, 1]
    tolerance: float  # the effective quality tolerance applied
    # model -> expected cost; a model without a known price is absent (it ranks as the dearest)
    est_cost_usd: dict[str, float] = field(default_factory=dict)
    most_capable: str = ""  # the counterfactual model for savings
    kind: str = ""  # task kind, one of routing.kinds.KINDS (code, math, chat, extraction, ...)
    kind_confidence: float = 0.0  # the kind detector's probability for ``kind``
    reason: str = ""  # one-line explanation of the rule applied
    excluded: dict[str, str] = field(default_factory=dict)  # model -> why it was not eligible


class RouterEngine(Protocol):
    name: str
    models: tuple[str, ...]

    def decide(
        self,
        request: ChatRequest,
        *,
        tolerance: float | None = None,
        allowed: Collection[str] | None = None,
    ) -> Decision:
        """Decide for one request. ``tolerance`` overrides the router's; ``allowed`` narrows the
        candidates (a policy's soft budget, say). Raises ``NotFound``/``InvalidRequest`` from
        ``gearshift.errors`` when no candidate can serve the request."""
        ...
