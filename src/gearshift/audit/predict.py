"""Run the router's predictor on distinct prompts, in this process or in a pool of worker processes.

Feature extraction is pure Python and costs most of an audit, so on a multi-core machine the
audit's main process reads and prices while workers predict, one batch ahead (``submit`` now,
``collect`` when the batch is routed). Each worker builds its own router from the same settings,
so a worker's predictions are exactly the main process's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from gearshift.audit.readers.content import decode_messages
from gearshift.chat import ChatRequest, Message, Role, TextPart
from gearshift.config import RouterConfig, Settings

# Per message, for prediction only (tokens are counted on the whole text). The router's features
# read a window of each prompt (head, tail, lengths), so only a pathological message is cut, and
# its head and tail are kept: the router sees what it would see, at a bounded cost.
FEATURE_CHARS = 1_000_000
CHUNK = 256  # prompts per task sent to a worker
log = logging.getLogger("gearshift.audit")

# (prompt key, messages or their raw JSON array as the fast reader kept it)
Item = tuple[int, list[dict[str, Any]] | bytes]


@dataclass(slots=True, frozen=True)
class Prepared:
    """What the predictor said about one distinct prompt."""

    quality: tuple[float, ...]  # per candidate, in the auditor's column order
    difficulty: float
    kind: str
    est_prompt_tokens: int  # the router's own estimate, for its expected-cost ordering


def _truncate(text: str) -> str:
    if len(text) <= FEATURE_CHARS:
        return text
    head = FEATURE_CHARS * 3 // 4
    return text[:head] + "\n…\n" + text[-(FEATURE_CHARS - head) :]


def _role(name: str) -> Role:
    if name in ("system", "assistant", "tool"):
        return name  # type: ignore[return-value]
    return "user"


def to_request(messages: list[dict[str, Any]], *, truncate: bool) -> ChatRequest:
    out = []
    for m in messages:
        text = m.get("content") or ""
        part = TextPart(_truncate(text) if truncate else text)
        out.append(Message(role=_role(str(m.get("role"))), content=[part]))
    return ChatRequest(model="audit", messages=out)


class Predictor:
    """Predictions for one router, columns in the auditor's (tier, name) order."""

    def __init__(
        self, settings: Settings, router_cfg: RouterConfig, names: list[str], router: Any = None
    ) -> None:
        from gearshift.routing import build_router

        self.router = router if router is not None else build_router(settings, router_cfg)
        router_order = [p.name for p in self.router.profiles]
        self._columns = [router_order.index(n) for n in names]

    def predict(self, items: list[Item]) -> list[tuple[int, Prepared | None]]:
        """Predictions per key; None for messages that turn out unusable once decoded."""
        from gearshift.routing.engine import PREDICTION_DECIMALS
        from gearshift.routing.features import extract
        from gearshift.routing.tokens import estimate_request_tokens

        out: list[tuple[int, Prepared | None]] = []
        usable: list[tuple[int, list[dict[str, Any]]]] = []
        for key, item in items:
            messages = decode_messages(item) if isinstance(item, bytes) else item
            if messages:
                usable.append((key, messages))
            else:
                out.append((key, None))
        if not usable:
            return out
        requests = [to_request(messages, truncate=False) for _, messages in usable]
        features = []
        for (_, messages), request in zip(usable, requests, strict=True):
            long = any(len(m.get("content") or "") > FEATURE_CHARS for m in messages)
            features.append(extract(to_request(messages, truncate=True) if long else request))
        difficulty, quality = self.router.predictor.predict_many(features, self.router.profiles)
        quality = np.asarray(quality)[:, self._columns]
        for i, (key, _) in enumerate(usable):
            prepared = Prepared(
                # the router decides on (and records) its qualities rounded: so does the audit
                quality=tuple(round(float(q), PREDICTION_DECIMALS) for q in quality[i]),
                difficulty=float(difficulty[i]),
                kind=features[i].kind or "unknown",
                est_prompt_tokens=estimate_request_tokens(requests[i]),
            )
            out.append((key, prepared))
        return out


_WORKER: Predictor | None = None


def _init_worker(settings: Settings, router_cfg: RouterConfig, names: list[str]) -> None:
    global _WORKER
    _WORKER = Predictor(settings, router_cfg, names)


Plain = tuple[tuple[float, ...], float, str, int]


def _predict_in_worker(items: list[Item]) -> list[tuple[int, Plain | None]]:
    # Plain tuples cross the process boundary ~30x cheaper than dataclass instances.
    assert _WORKER is not None
    return [
        (key, None if p is None else (p.quality, p.difficulty, p.kind, p.est_prompt_tokens))
        for key, p in _WORKER.predict(items)
    ]


Result = list[tuple[int, Prepared | None]]
Handle = list[tuple["Future[list[tuple[int, Plain | None]]]", list[Item]]] | Result


class PredictionPool:
    """``submit(items)`` returns a handle at once; ``collect(handle)`` waits for its results.
    With ``workers <= 1`` everything runs in this process, synchronously."""

    def __init__(
        self,
        settings: Settings,
        router_cfg: RouterConfig,
        names: list[str],
        workers: int,
        *,
        router: Any = None,
    ) -> None:
        self.local = Predictor(settings, router_cfg, names, router)
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(settings, router_cfg, names),
            )
            # Fork every worker now, while this process has no other threads (a progress bar's
            # refresh thread holding a lock at fork time could deadlock a child).
            warm = [self._pool.submit(os.getpid) for _ in range(workers)]
            for future in warm:
                future.result()

    def submit(self, items: list[Item]) -> Handle:
        if self._pool is None:
            return self.local.predict(items)
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        try:
            return [(self._pool.submit(_predict_in_worker, c), c) for c in chunks]
        except BrokenProcessPool:
            self._lost()
            return self.local.predict(items)

    def collect(self, handle: Handle) -> Result:
        out: Result = []
        for part in handle:
            if isinstance(part, tuple) and isinstance(part[0], Future):
                future, chunk = part
                try:
                    out.extend(
                        (key, None if t is None else Prepared(*t)) for key, t in future.result()
                    )
                except BrokenProcessPool:
                    # A worker died (killed, out of memory): carry on in this process.
                    self._lost()
                    out.extend(self.local.predict(chunk))
            else:
                out.append(part)
        return out

    def _lost(self) -> None:
        if self._pool is not None:
            log.warning("a predictor process died; the audit continues in one process")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
