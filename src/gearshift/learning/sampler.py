"""Judged samples: after the client has its answer, a sampled request that a lighter model served
is sent to the reference model too, and the judge grades both answers (one call each). The result
is one label row; every reference and judge call is a ledger row of its own, tagged
``feature=gearshift-learning``, so learning spend shows in reports and /metrics like any other.

Off the request path by construction: ``offer`` only puts a job on a bounded queue (a full queue
drops the sample and counts it); one worker task does the calls. A provider failure pauses the
router's sampling with a growing backoff, and the daily cap pauses it until the next UTC day;
each pause is one log line. Before each call the worst case of its cost (prompt tokens estimated
generously, completion at its ``max_tokens``) must fit under the cap, so spend never exceeds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from gearshift.chat import ChatRequest, ChatResponse, Usage
from gearshift.errors import GearshiftError
from gearshift.learning.judge import (
    JudgeReplyError,
    judge_request,
    parse_judge_reply,
)
from gearshift.learning.store import Label, insert_label, purge_labels, request_messages
from gearshift.ledger.record import LedgerRecord
from gearshift.routing.tokens import estimate_request_tokens

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway, Served
    from gearshift.config import LearningConfig, ModelConfig
    from gearshift.ledger.store import LedgerStore

log = logging.getLogger("gearshift.learning")

LEARNING_FEATURE = "gearshift-learning"
QUEUE_SIZE = 256
PAUSE_MIN_S = 30.0
PAUSE_MAX_S = 900.0
# Prompt-token estimates are approximate; the cap check assumes this much more, plus a margin.
ESTIMATE_SAFETY = 1.5
ESTIMATE_MARGIN_TOKENS = 64


@dataclass(slots=True)
class _Job:
    request: ChatRequest
    answer: str
    request_id: str
    router: str
    served_model: str
    reference: str
    kind: str | None
    served_cost: float


def _next_utc_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _utc_day_start(now: float) -> float:
    return _next_utc_midnight(now) - 86400.0


class Sampler:
    """The gateway's answer observer for routers with ``learning:`` configured."""

    def __init__(self, gateway: Gateway, store_opener: StoreOpener) -> None:
        self.gateway = gateway
        self._open_store = store_opener
        self.store: LedgerStore | None = None
        self.learning: dict[str, LearningConfig] = {
            r.name: r.learning for r in gateway.settings.routers if r.learning is not None
        }
        self.counts: Counter[str] = Counter()  # sampled, labelled, dropped_*, judge_unparsable...
        self.events: Counter[tuple[str, str]] = Counter()  # the same, per router
        self.spent_today: dict[str, Decimal] = {}
        self._day = 0.0
        self._paused_until: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._unfinished = 0  # samples queued or being judged
        self._rng = random.Random()

    # ---- the request side: cheap, never raises ------------------------------------------------

    def _sampled(self, served: Served) -> bool:
        router = served.router
        cfg = self.learning.get(router) if router else None
        if cfg is None or served.record.outcome != "ok":
            return False
        if self._paused_until.get(router or "", 0.0) > time.time():
            return False
        if served.model == self._reference(router or "", cfg):
            return False  # nothing to compare against: the reference itself answered
        return self._rng.random() < cfg.sample_rate

    def wants(self, served: Served) -> bool:
        return self._sampled(served)

    def offer(self, request: ChatRequest, answer: str, served: Served) -> None:
        # Streams were sampled when they opened (``wants``); plain answers are sampled now.
        if not served.record.stream and not self._sampled(served):
            return
        router = served.router or ""
        cfg = self.learning[router]
        job = _Job(
            request,
            answer,
            served.request_id,
            router,
            served.model,
            self._reference(router, cfg),
            served.record.prompt_kind,
            float(served.cost_usd),
        )
        try:
            self._queue.put_nowait(job)
            self._unfinished += 1
            self._count(router, "sampled")
        except asyncio.QueueFull:
            self._count(router, "dropped_queue_full")

    def _reference(self, router: str, cfg: LearningConfig) -> str:
        if cfg.reference is not None:
            return cfg.reference
        capable = getattr(self.gateway.routers.get(router), "most_capable", None)
        if isinstance(capable, str) and capable:
            return capable
        return self.gateway.router_configs[router].models[-1]

    def prometheus(self) -> str:
        """``gearshift_learning_events_total{router, event}``: samples taken, labelled, dropped
        (and why: unparsable judge reply, cap, failure, full queue), pauses. Per process."""
        lines = [
            "# HELP gearshift_learning_events_total Learning-loop events in this process.",
            "# TYPE gearshift_learning_events_total counter",
        ]
        for (router, event), n in sorted(self.events.items()):
            lines.append(
                f'gearshift_learning_events_total{{router="{router}",event="{event}"}} {n}'
            )
        return "\n".join(lines) + "\n"

    def _count(self, router: str, event: str) -> None:
        self.counts[event] += 1
        self.events[(router, event)] += 1

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.learning:
            return
        self.store = await asyncio.to_thread(self._open_store)
        await asyncio.to_thread(self._load_spend, time.time())
        self._tasks = [
            asyncio.create_task(self._work(), name="gearshift-learning"),
            asyncio.create_task(self._purge_loop(), name="gearshift-learning-retention"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    @property
    def idle(self) -> bool:
        """No sample queued or being judged (tests wait for this)."""
        return self._unfinished == 0

    def _load_spend(self, now: float) -> None:
        """Today's learning spend per router from the ledger (all replicas write there)."""
        assert self.store is not None
        self._day = _utc_day_start(now)
        rows = self.store.execute_read(
            "SELECT r.router, SUM(r.cost_pusd) FROM requests r JOIN request_tags t "
            "ON t.request_id = r.id WHERE t.key = 'feature' AND t.value = ? AND r.ts >= ? "
            "GROUP BY r.router",
            (LEARNING_FEATURE, self._day),
        )
        pico = Decimal(10) ** 12
        self.spent_today = {str(r): Decimal(int(c or 0)) / pico for r, c in rows if r}

    # ---- the worker ---------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._judge_sample(job)
            except Exception:
                log.exception("learning sample for request %s failed", job.request_id)
                self._count(job.router, "dropped_error")
            finally:
                self._unfinished -= 1

    async def _purge_loop(self) -> None:
        while True:
            now = time.time()
            for router, cfg in self.learning.items():
                try:
                    assert self.store is not None
                    gone = await asyncio.to_thread(
                        purge_labels, self.store, router, now - cfg.retention_days * 86400.0
                    )
                    if gone:
                        log.info(
                            "learning: deleted %d label(s) of router %s past retention",
                            gone,
                            router,
                        )
                except Exception:
                    log.exception("learning: retention purge failed for router %s", router)
            await asyncio.sleep(3600.0)

    def _pause(self, router: str, why: str) -> None:
        delay = min(PAUSE_MAX_S, max(PAUSE_MIN_S, self._backoff.get(router, 0.0) * 2))
        self._backoff[router] = delay
        self._paused_until[router] = time.time() + delay
        self._count(router, "paused")
        log.warning("learning for router %s paused for %.0fs: %s", router, delay, why)

    def _pause_for_cap(self, router: str, cap: float) -> None:
        now = time.time()
        if self._paused_until.get(router, 0.0) > now:
            return
        self._paused_until[router] = _next_utc_midnight(now)
        self._count(router, "paused_cap")
        log.warning(
            "learning for router %s paused until 00:00 UTC: its daily cap $%s is reached "
            "(spent $%s today)",
            router,
            cap,
            self.spent_today.get(router, Decimal(0)),
        )

    def _fits(
        self, job: _Job, cfg: LearningConfig, model: ModelConfig, request: ChatRequest
    ) -> bool:
        now = time.time()
        if now >= self._day + 86400.0:
            self._day = _utc_day_start(now)
            self.spent_today.clear()
        prompt = int(estimate_request_tokens(request) * ESTIMATE_SAFETY) + ESTIMATE_MARGIN_TOKENS
        worst = self._price(
            model, Usage(input_tokens=prompt, output_tokens=request.max_tokens or 0)
        )
        spent = self.spent_today.get(job.router, Decimal(0))
        if spent + worst > Decimal(str(cfg.max_usd_per_day)):
            self._pause_for_cap(job.router, cfg.max_usd_per_day)
            return False
        return True

    def _price(self, model: ModelConfig, usage: Usage) -> Decimal:
        pricer = self.gateway.pricer
        if pricer is None:
            return Decimal(0)
        cost: Decimal = pricer.cost(model, usage).cost_usd
        return cost

    async def _call(
        self, job: _Job, cfg: LearningConfig, role: str, request: ChatRequest
    ) -> ChatResponse | None:
        """One learning call, capped and recorded as its own ledger row; None if it did not
        happen (cap) or failed (the router's sampling pauses)."""
        model = self.gateway.models[request.model]
        if not self._fits(job, cfg, model, request):
            self._count(job.router, "dropped_cap")
            return None
        record = LedgerRecord(
            id=f"{job.request_id}.learn-{role}",
            ts=time.time(),
            dialect="openai",
            requested_model=model.name,
            router=job.router,
            tags={"feature": LEARNING_FEATURE, "learning": role.rstrip("0123456789")},
            chosen_model=model.name,
            served_model=model.name,
            counterfactual_model=model.name,
        )
        started = time.perf_counter()
        try:
            provider, upstream = self.gateway.upstream_for(model)
            response = await provider.complete(request, upstream)
        except GearshiftError as exc:
            record.status, record.outcome, record.error = exc.status, "error", exc.message
            record.latency_ms = (time.perf_counter() - started) * 1000.0
            self.gateway._publish(record)
            self._count(job.router, f"failed_{role.rstrip('0123456789')}")
            self._pause(job.router, f"{role} call to {model.name} failed: {exc.message}")
            return None
        usage = response.usage
        cost = self._price(model, usage)
        record.prompt_tokens, record.completion_tokens = usage.input_tokens, usage.output_tokens
        record.cost_usd = record.counterfactual_cost_usd = cost
        record.latency_ms = record.ttfb_ms = (time.perf_counter() - started) * 1000.0
        if self.gateway.pricer is not None:
            record.price_source = self.gateway.pricer.cost(model, usage).source
        self.spent_today[job.router] = self.spent_today.get(job.router, Decimal(0)) + cost
        self.gateway._publish(record)
        return response

    async def _grade(self, job: _Job, cfg: LearningConfig, role: str, answer: str) -> float | None:
        judge = self.gateway.models[cfg.judge]
        request = judge_request(
            job.request, answer, judge_model=judge.name, json_mode=judge.capabilities.json_mode
        )
        response = await self._call(job, cfg, role, request)
        if response is None:
            return None
        try:
            return parse_judge_reply(response.text())
        except JudgeReplyError as exc:
            self._count(job.router, "judge_unparsable")
            log.warning("learning: dropped sample %s: %s", job.request_id, exc)
            return None

    async def _judge_sample(self, job: _Job) -> None:
        cfg = self.learning[job.router]
        if self._paused_until.get(job.router, 0.0) > time.time():
            self._count(job.router, "dropped_paused")
            return
        reference_request = dataclasses.replace(
            job.request,
            model=job.reference,
            stream=False,
            raw=None,  # re-encoded for the reference's provider, never the client's body
            max_tokens=min(job.request.max_tokens or cfg.max_tokens, cfg.max_tokens),
        )
        reference = await self._call(job, cfg, "reference", reference_request)
        if reference is None:
            return
        served_q = await self._grade(job, cfg, "judge1", job.answer)
        if served_q is None:
            return
        reference_q = await self._grade(job, cfg, "judge2", reference.text())
        if reference_q is None:
            return
        reference_cost = float(self._price(self.gateway.models[job.reference], reference.usage))
        label = Label(
            id=job.request_id,
            ts=time.time(),
            router=job.router,
            kind=job.kind,
            messages=request_messages(job.request),
            scores={job.served_model: served_q, job.reference: reference_q},
            costs={job.served_model: job.served_cost, job.reference: reference_cost},
            source="judge",
            judge=cfg.judge,
        )
        assert self.store is not None
        await asyncio.to_thread(insert_label, self.store, label)
        self._backoff.pop(job.router, None)
        self._count(job.router, "labelled")


class StoreOpener:
    """Opens a connection of our own to the ledger database (the writer keeps its own)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self) -> LedgerStore:
        from gearshift.ledger.store import open_store

        return open_store(self.url)
