"""Budget rules: which budgets a request falls under, their counters for the current UTC period,
and the messages a refusal or an alert carries.

A budget comes from config (``policy.budgets``: scope by any tags, ``key`` included) or from a
virtual key (``gearshift keys create --budget 2000/month``, scoped to that key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from gearshift.config import BudgetConfig
from gearshift.policy.counters import Limit, from_nano, to_nano
from gearshift.policy.keys import KeyInfo
from gearshift.policy.periods import Period, format_reset, period_end, period_id

_PERIOD_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 31 * 86_400}
THIS_PERIOD = {"day": "today", "week": "this week", "month": "this month"}


def limit_text(usd: float) -> str:
    """A configured limit as written: cents at least, every digit it has beyond (a $0.004 limit
    must not read "$0.00")."""
    exact = Decimal(str(usd)).normalize()
    if exact == exact.quantize(Decimal("0.01")):
        return f"${usd:,.2f}"
    return f"${exact:,f}"


@dataclass(frozen=True, slots=True)
class BudgetRule:
    name: str
    scope: Mapping[str, str] = field(default_factory=dict)
    period: Period = "month"
    limit_usd: float = 0.0
    soft_limit_usd: float | None = None
    alert_thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    max_usd_per_hour: float | None = None

    @classmethod
    def from_config(cls, cfg: BudgetConfig) -> BudgetRule:
        return cls(
            name=cfg.name,
            scope=dict(cfg.scope),
            period=cfg.period,
            limit_usd=cfg.limit_usd,
            soft_limit_usd=cfg.soft_limit_usd,
            alert_thresholds=tuple(cfg.alert_thresholds),
            max_usd_per_hour=cfg.max_usd_per_hour,
        )

    @classmethod
    def for_key(cls, key: KeyInfo) -> BudgetRule | None:
        if key.budget_usd is None or key.budget_period is None:
            return None
        return cls(
            name=f"key:{key.id}",
            scope={"key": key.id},
            period=key.budget_period,
            limit_usd=key.budget_usd,
        )

    def matches(self, tags: Mapping[str, str]) -> bool:
        return all(tags.get(k) == v for k, v in self.scope.items())

    def counter(self, now: float) -> str:
        return f"budget:{self.name}:{period_id(now, self.period)}"

    def limit(self, now: float) -> Limit:
        rate = self.max_usd_per_hour
        return Limit(
            counter=self.counter(now),
            limit=to_nano(self.limit_usd),
            ttl_s=_PERIOD_SECONDS[self.period] + 2 * 86_400,
            rate_counter=f"rate:{self.name}" if rate is not None else None,
            rate_limit=to_nano(rate) if rate is not None else None,
        )

    def describe(self) -> str:
        scope = ",".join(f"{k}={v}" for k, v in self.scope.items()) or "all traffic"
        return f"budget {self.name!r} ({scope})"

    def resets_at(self, now: float) -> str:
        return format_reset(now, self.period)

    def seconds_to_reset(self, now: float) -> float:
        return max(1.0, period_end(now, self.period).timestamp() - now)

    def hard_message(self, spent_nano: int, now: float) -> str:
        """The refusal when what is spent already reaches the limit."""
        return (
            f"{self.describe()} is exhausted: ${from_nano(spent_nano):,.4f} of "
            f"{limit_text(self.limit_usd)} spent {THIS_PERIOD[self.period]}; it resets at "
            f"{self.resets_at(now)}"
        )

    def would_exceed_message(
        self, spent_nano: int, reserved_nano: int, estimate_nano: int, now: float
    ) -> str:
        """The refusal when the budget is not spent yet but this request's estimate (plus what
        requests in flight reserved) would take it past the limit."""
        in_flight = (
            f" + ${from_nano(reserved_nano):,.4f} reserved by requests in flight"
            if reserved_nano > 0
            else ""
        )
        return (
            f"{self.describe()} would be exceeded: ${from_nano(spent_nano):,.4f} spent "
            f"{THIS_PERIOD[self.period]}{in_flight} + ~${from_nano(estimate_nano):,.4f} estimated "
            f"for this request > {limit_text(self.limit_usd)}; it resets at {self.resets_at(now)}"
        )

    def rate_message(self, in_hour_nano: int, retry_after_s: float) -> str:
        return (
            f"{self.describe()} spend-rate limit reached: ${from_nano(in_hour_nano):,.4f} in the "
            f"last hour against {limit_text(self.max_usd_per_hour or 0.0)}/hour; retry in "
            f"{int(retry_after_s)} s"
        )
