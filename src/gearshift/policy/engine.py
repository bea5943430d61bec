"""The policy engine the gateway calls: keys, budgets, spend-rate limits and targets controllers.

``authenticate`` maps a presented key to its id and default tags (memory only). ``admit`` reserves
the request's estimated cost on every budget it falls under (refusing with ``BudgetExceeded`` or
``RateLimited``), narrows the candidates past a soft limit, and asks the router's targets
controller for the tolerance. ``settle`` replaces the reservation by the actual cost, raises
alerts, and feeds the controller. Counters live in this process, or in Redis when configured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Collection, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gearshift.config import RouterConfig, Settings
from gearshift.errors import (
    AuthenticationError,
    BudgetExceeded,
    ConfigError,
    PermissionDenied,
    RateLimited,
)
from gearshift.ledger.record import LedgerRecord
from gearshift.policy.alerts import AlertSender
from gearshift.policy.budgets import THIS_PERIOD, BudgetRule, limit_text
from gearshift.policy.contract import Admission, Caller
from gearshift.policy.controller import Outcome, TargetsController
from gearshift.policy.counters import Limit, MemoryCounters, SpendCounters, from_nano, to_nano
from gearshift.policy.keycache import KeyCache
from gearshift.policy.keys import KEY_PREFIX, KeyInfo, KeyStore
from gearshift.policy.periods import Clock, period_start
from gearshift.policy.ratelimit import MemoryMinuteCounters, RateLimiter, RateRule, RateTicket
from gearshift.policy.tiers import light_models, lighter_models, model_ranks, prior_costs

if TYPE_CHECKING:
    from gearshift.policy.controller_sync import ControllerSync

log = logging.getLogger("gearshift.policy")

_ESTIMATE_WINDOW = 200
# Never echo the presented key: it may be a provider key sent by mistake.
_NOT_A_KEY = "the API key is not a valid gearshift virtual key (unknown or revoked)"
_CONTENTION_WAIT_S = 5.0


@dataclass(slots=True)
class Reservation:
    """The opaque ``Admission.token``: what was reserved where, so settle can undo it exactly."""

    rules: list[BudgetRule]
    limits: list[Limit]
    estimate: int  # nano-USD
    minute: int
    settled: bool = False


@dataclass(slots=True)
class _RouterInfo:
    lighter: frozenset[str]
    controller: TargetsController | None = None
    notes: list[str] = field(default_factory=list)


class GearshiftPolicy:
    def __init__(
        self,
        settings: Settings,
        *,
        counters: SpendCounters | None = None,
        clock: Clock = time.time,
        redis_prefix: str = "gs:",
        seed_from_ledger: bool = True,
    ) -> None:
        self.settings = settings
        self._policy = settings.policy
        self._clock = clock
        self._counters: SpendCounters | None = counters
        self._owns_counters = counters is None
        self._redis_prefix = redis_prefix
        self._seed_from_ledger = seed_from_ledger
        self._rules = [BudgetRule.from_config(b) for b in self._policy.budgets]
        self._key_rules: dict[str, BudgetRule] = {}
        self._keys: KeyCache | None = None
        self.alerts = AlertSender(self._policy.alert_webhook)
        self._costs: dict[str, deque[int]] = {}
        self._routers: dict[str, _RouterInfo] = _router_infos(settings, {})
        # In-process counters until start() connects Redis (when configured).
        self.limiter = RateLimiter(self._policy.limits, MemoryMinuteCounters(), clock)
        self._started = False
        self._start_lock = asyncio.Lock()
        self._seeded: set[str] = set()
        self._sync: ControllerSync | None = None
        self._marked: set[str] = set()  # alert marks already taken (here or by another replica)
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect counters, load keys and seed spend from the ledger (idempotent)."""
        async with self._start_lock:
            if self._started:
                return
            if self._counters is None:
                if self._policy.redis_url:
                    from gearshift.policy.redis_counters import RedisCounters

                    counters = await RedisCounters.connect(
                        self._policy.redis_url, self._redis_prefix
                    )
                    self._counters = counters
                    from gearshift.policy.ratelimit import RedisMinuteCounters

                    self.limiter.counters = RedisMinuteCounters(counters.client, counters.prefix)
                    controllers = {
                        name: info.controller
                        for name, info in self._routers.items()
                        if info.controller is not None
                    }
                    if controllers:
                        from gearshift.policy.controller_sync import ControllerSync

                        self._sync = ControllerSync(counters.client, counters.prefix, controllers)
                        await self._sync.start()
                else:
                    self._counters = MemoryCounters()
            if self.settings.storage:
                store = await asyncio.to_thread(KeyStore.open, self.settings.storage)
                self._keys = KeyCache(
                    store, refresh_s=self._policy.key_refresh_s, on_change=self._keys_changed
                )
                await self._keys.start()
            await self._seed_all()
            self._started = True

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)  # settlements and alerts
        if self._tasks:  # settlements spawn alerts
            await asyncio.wait(set(self._tasks), timeout=5.0)
        if self._keys is not None:
            await self._keys.aclose()
            self._keys = None
        if self._sync is not None:
            await self._sync.aclose()
            self._sync = None
        await self.alerts.aclose()
        if self._counters is not None and self._owns_counters:
            await self._counters.aclose()
            self._counters = None  # a later start() connects afresh
        self._started = False

    def reconfigure(self, settings: Settings) -> None:
        """A reload: budgets, rate limits, alert webhook and router targets change at once for
        requests admitted from now on (a request already admitted settles on the rules it
        reserved on). Counters, keys and controllers' learning stay. Raises ``ConfigError`` and
        changes nothing for what cannot change without a restart (where counters live)."""
        if settings.policy.redis_url != self._policy.redis_url:
            raise ConfigError(
                "policy.redis_url differs from the running configuration; it cannot change "
                "without a restart (counters live there)"
            )
        if settings.policy.auth != self._policy.auth:
            log.info("policy.auth is now %s", settings.policy.auth)
        routers = _router_infos(settings, self._routers)
        if settings.policy.alert_webhook != self._policy.alert_webhook:
            old_alerts, self.alerts = self.alerts, AlertSender(settings.policy.alert_webhook)
            self._spawn(old_alerts.aclose())
        self.settings = settings
        self._policy = settings.policy
        self._rules = [BudgetRule.from_config(b) for b in settings.policy.budgets]
        self._routers = routers
        self.limiter.reconfigure(settings.policy.limits)

    def _keys_changed(self, by_id: dict[str, KeyInfo]) -> None:
        rules = {}
        for key in by_id.values():
            rule = BudgetRule.for_key(key)
            if rule is not None:
                rules[key.id] = rule
        self._key_rules = rules

    async def _seed_all(self) -> None:
        if not self._seed_from_ledger or not self.settings.storage:
            return
        now = self._clock()
        rules = self._rules + list(self._key_rules.values())
        todo = [r for r in rules if r.counter(now) not in self._seeded]
        if not todo:
            return
        from gearshift.policy.seed import spent_since

        assert self._counters is not None
        self._seeded.update(r.counter(now) for r in todo)  # once, even if the ledger is down
        try:
            amounts = await asyncio.to_thread(
                spent_since,
                self.settings.storage,
                [(r.scope, period_start(now, r.period).timestamp()) for r in todo],
            )
        except Exception as exc:
            log.error("budget counters not seeded from the ledger: %s", exc)
            return
        for rule, amount in zip(todo, amounts, strict=True):
            lim = rule.limit(now)
            await self._counters.seed(lim.counter, amount, lim.ttl_s)

    async def refresh_keys(self) -> None:
        """Re-read the keys table now (after ``/admin/keys`` revoked or rotated one), so the
        change applies on this gateway at once rather than at the next poll."""
        if self._keys is not None:
            await self._keys.refresh(force=True)

    # ---- the PolicyEngine protocol -----------------------------------------------------------

    async def authenticate(self, api_key: str | None) -> Caller:
        """A presented gearshift key (``gs-...``) must be valid whatever ``policy.auth`` says: an
        unknown, revoked or expired one is refused, never served as anonymous (it would escape its
        budget). Under ``auth: optional`` a request with no key, or with some other string (the
        SDKs insist on an API key, so clients send placeholders), is anonymous."""
        if not self._started:
            await self.start()
        if api_key and api_key.startswith(KEY_PREFIX):
            info = await self._keys.find(api_key) if self._keys is not None else None
            if info is not None:
                if info.expired(time.time()):
                    raise AuthenticationError(
                        f"this gearshift key ({info.id}) expired; ask an admin for a new one"
                    )
                return Caller(info.id, info.default_tags(), info.models, info.rpm, info.tpm)
            raise AuthenticationError(_NOT_A_KEY)
        if api_key and self._policy.auth == "required":
            raise AuthenticationError(_NOT_A_KEY)
        if self._policy.auth == "required":
            raise AuthenticationError(
                "this gateway requires a gearshift virtual key (policy.auth: required); "
                "send it as the API key ('gearshift keys create' issues one)"
            )
        return Caller()

    async def admit(
        self,
        router: RouterConfig | None,
        model: str,
        tags: dict[str, str],
        caller: Caller,
    ) -> Admission:
        if not self._started:
            await self.start()
        assert self._counters is not None
        if caller.models is not None and model not in caller.models:
            raise PermissionDenied(
                f"key {caller.key_id} may use only {', '.join(caller.models) or '(nothing)'}; "
                f"not {model!r}",
                param="model",
            )
        now = self._clock()
        scope_tags = {**tags, **caller.tags}  # a key's own tags cannot be overridden per request
        if caller.key_id is not None:
            scope_tags["key"] = caller.key_id
        # Rate limits first: a refused request reserves nothing on the budgets.
        own: tuple[RateRule, ...] = ()
        if caller.key_id is not None and (caller.rpm is not None or caller.tpm is not None):
            own = (RateRule(f"key:{caller.key_id}", {}, caller.rpm, caller.tpm),)
        ticket = await self.limiter.admit(scope_tags, own) if self.limiter.rules or own else None
        rules = [r for r in self._rules if r.matches(scope_tags)]
        key_rule = self._key_rules.get(caller.key_id) if caller.key_id else None
        if key_rule is not None:
            rules.append(key_rule)
        admission = Admission(rate=ticket)
        info = self._routers.get(router.name) if router is not None else None
        if rules:
            await self._reserve(admission, rules, model, now, info)
        if info is not None and info.controller is not None:
            advice = info.controller.advise()
            admission.tolerance = advice.tolerance
            admission.allowed = _narrow(admission.allowed, advice.allowed, admission.notes)
            admission.notes.extend(advice.notes)
        return admission

    async def settle(self, admission: Admission, record: LedgerRecord) -> None:
        if isinstance(admission.rate, RateTicket):
            ticket, admission.rate = admission.rate, None
            tokens = record.prompt_tokens + record.completion_tokens
            if isinstance(self.limiter.counters, MemoryMinuteCounters):
                await self._settle_rate(ticket, tokens)
            else:  # a Redis round trip the answer need not wait for
                self._spawn(self._settle_rate(ticket, tokens))
        actual = to_nano(record.cost_usd)
        token = admission.token
        if isinstance(token, Reservation) and not token.settled:
            token.settled = True
            if isinstance(self._counters, MemoryCounters):
                await self._settle_counters(token, actual)
            else:
                # A round trip to Redis the answer need not wait for: until it lands the request
                # stays reserved, which can only make others wait, never overspend.
                self._spawn(self._settle_counters(token, actual))
        if record.outcome == "ok" and record.served_model is not None:
            history = self._costs.setdefault(record.requested_model, deque(maxlen=_ESTIMATE_WINDOW))
            history.append(actual)
            info = self._routers.get(record.router or "")
            if info is not None and info.controller is not None:
                outcome = Outcome(
                    record.predicted,
                    record.served_model,
                    float(record.cost_usd),
                    record.latency_ms,
                    record.tolerance,
                )
                info.controller.observe(outcome)
                if self._sync is not None:
                    self._sync.record(info.controller.router, outcome)

    async def _settle_counters(self, token: Reservation, actual: int) -> None:
        assert self._counters is not None
        try:
            spent = await self._counters.settle(token.limits, token.estimate, actual, token.minute)
        except Exception as exc:  # the reservation expires with its period; spend is in the ledger
            log.error("settling budget counters failed: %s", exc)
            return
        self._check_alerts(token, spent)

    async def _settle_rate(self, ticket: RateTicket, tokens: int) -> None:
        try:
            await self.limiter.settle(ticket, tokens)
        except Exception as exc:  # the minute's tokens undercount; the ledger has them
            log.error("counting tokens on rate limits failed: %s", exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background settlements and alerts (shutdown, tests)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    # ---- budgets -------------------------------------------------------------------------------

    def estimate(self, model: str) -> int:
        """What a request on ``model`` (router or model) may cost: the most expensive of the recent
        ones, so a reservation covers the actual cost; the configured default before any."""
        history = self._costs.get(model)
        if history:
            return max(max(history), 1)
        return to_nano(self._policy.reserve_usd)

    async def _reserve(
        self,
        admission: Admission,
        rules: list[BudgetRule],
        model: str,
        now: float,
        info: _RouterInfo | None,
    ) -> None:
        assert self._counters is not None
        limits = [r.limit(now) for r in rules]
        unseeded = [lim.counter for lim in limits if lim.counter not in self._seeded]
        if unseeded and self._seed_from_ledger and self.settings.storage:
            await self._seed_all()  # a new period or a new key's budget
        estimate = self.estimate(model)
        minute = int(now // 60)
        out = await self._counters.reserve(limits, estimate, minute)
        waited = 0.0
        while not out.ok and out.kind == "hard" and waited < _CONTENTION_WAIT_S:
            # Refused only because of other requests' reservations? Their actual costs may leave
            # room (a burst before any cost was observed reserves the default each): wait for
            # them to settle rather than refuse a budget that is not spent.
            assert out.failed is not None
            lim = limits[out.failed]
            if (await self._counters.spent([lim.counter]))[0] + estimate > lim.limit:
                break
            await asyncio.sleep(0.01)
            waited += 0.01
            out = await self._counters.reserve(limits, estimate, minute)
        if not out.ok:
            assert out.failed is not None
            rule, lim = rules[out.failed], limits[out.failed]
            if out.kind == "rate":
                retry = out.retry_after_s or 60.0
                raise RateLimited(rule.rate_message(out.rate_used, retry), retry_after_s=retry)
            spent = (await self._counters.spent([lim.counter]))[0]
            if spent >= lim.limit:
                label, message = "exhausted", rule.hard_message(spent, now)
            else:  # refused on spend + reservations + estimate: the budget is not used up
                reserved = max(0, (await self._counters.used([lim.counter]))[0] - spent)
                label = "refused"
                message = rule.would_exceed_message(spent, reserved, estimate, now)
            await self._alert(rule, lim, spent, label, now, message)
            raise BudgetExceeded(message, retry_after_s=rule.seconds_to_reset(now))
        admission.token = Reservation(rules, limits, estimate, minute)
        for rule, used in zip(rules, out.used, strict=True):
            soft = rule.soft_limit_usd
            if soft is None or used - estimate < to_nano(soft):
                continue
            note = (
                f"soft limit of {rule.describe()} reached (${from_nano(used - estimate):,.4f} "
                f"of {limit_text(soft)}): lighter models only"
            )
            admission.notes.append(note)
            if info is not None:
                admission.allowed = _narrow(admission.allowed, info.lighter, admission.notes)

    def _check_alerts(self, token: Reservation, spent: list[int]) -> None:
        """Thresholds are crossed by what is spent, not by what is merely reserved."""
        now = self._clock()
        for rule, lim, u in zip(token.rules, token.limits, spent, strict=True):
            for threshold in rule.alert_thresholds:
                label = f"{threshold:.0%}"
                if (
                    u >= threshold * lim.limit
                    and f"alert:{lim.counter}:{label}" not in self._marked
                ):
                    self._spawn(self._alert(rule, lim, u, label, now))

    async def _alert(
        self,
        rule: BudgetRule,
        lim: Limit,
        used: int,
        label: str,
        now: float,
        refusal: str | None = None,
    ) -> None:
        """One alert per budget, period and ``label`` (a threshold, ``exhausted`` or
        ``refused``); ``refusal`` is the refused request's message, sent as the alert's."""
        assert self._counters is not None
        mark = f"alert:{lim.counter}:{label}"
        if mark in self._marked:
            return
        self._marked.add(mark)
        try:
            first = await self._counters.mark_once(mark, lim.ttl_s)
        except Exception as exc:
            log.error("budget alert bookkeeping failed: %s", exc)
            return
        if not first:
            return  # another replica sent it
        spent = from_nano(used)
        self.alerts.send(
            {
                "type": "budget_alert",
                "budget": rule.name,
                "scope": dict(rule.scope),
                "period": rule.period,
                "threshold": label,
                "spent_usd": round(spent, 6),
                "limit_usd": rule.limit_usd,
                "resets_at": rule.resets_at(now),
                "message": refusal
                or (
                    f"{rule.describe()}: {label} — ${spent:,.4f} of {limit_text(rule.limit_usd)} "
                    f"{THIS_PERIOD[rule.period]}; resets at {rule.resets_at(now)}"
                ),
            }
        )

    # ---- status ----------------------------------------------------------------------------------

    def controller(self, router: str) -> TargetsController | None:
        info = self._routers.get(router)
        return info.controller if info is not None else None

    def controllers_status(self) -> list[dict[str, Any]]:
        return [i.controller.status() for i in self._routers.values() if i.controller is not None]

    async def prometheus(self) -> str:
        """Controller and budget gauges in Prometheus text format (appended to ``/metrics``)."""
        from gearshift.policy.metrics import prometheus_text

        return await prometheus_text(self)

    async def budgets_status(self) -> list[dict[str, Any]]:
        """Spend against every budget this period (for the dashboard's burn-down and reports)."""
        if not self._started:
            await self.start()
        assert self._counters is not None
        now = self._clock()
        rules = self._rules + list(self._key_rules.values())
        used = await self._counters.used([r.counter(now) for r in rules])
        return [
            {
                "budget": r.name,
                "scope": dict(r.scope),
                "period": r.period,
                "limit_usd": r.limit_usd,
                "soft_limit_usd": r.soft_limit_usd,
                "spent_usd": round(from_nano(u), 6),
                "resets_at": r.resets_at(now),
            }
            for r, u in zip(rules, used, strict=True)
        ]


def _router_infos(settings: Settings, before: dict[str, _RouterInfo]) -> dict[str, _RouterInfo]:
    """Per router: its lighter models and its targets controller. A controller whose router and
    targets are unchanged since ``before`` is kept, with what it has learnt."""
    infos: dict[str, _RouterInfo] = {}
    for r in settings.routers:
        ranks = model_ranks(settings, r.models)
        info = _RouterInfo(lighter_models(ranks))
        old = before.get(r.name)
        kept = old.controller if old is not None else None
        if r.targets is not None:
            same = kept is not None and (kept.models, kept.targets, kept.base) == (
                tuple(r.models),
                r.targets,
                min(r.quality_tolerance, r.targets.max_quality_tolerance),
            )
            if kept is not None and same:
                info.controller = kept
            else:
                info.controller = TargetsController(
                    r.name,
                    r.models,
                    r.quality_tolerance,
                    r.targets,
                    light=light_models(ranks),
                    prior_cost=prior_costs(settings, r.models),
                )
        infos[r.name] = info
    return infos


def _narrow(
    current: Collection[str] | None, extra: Collection[str] | None, notes: list[str]
) -> Collection[str] | None:
    """Intersect two candidate restrictions; if nothing is left, the earlier one (budget) wins."""
    if extra is None:
        return current
    if current is None:
        return frozenset(extra)
    both = frozenset(current) & frozenset(extra)
    if not both:
        notes.append("targets controller's latency preference dropped: the budget allows none")
        return current
    return both
