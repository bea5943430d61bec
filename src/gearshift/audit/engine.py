"""The audit pass: stream a log, predict once per distinct prompt, route at many tolerances at once.

Per batch of requests, the router's predictor runs only on prompts not seen before (decisions for
repeated prompts come from a bounded cache); everything else is numpy over the batch: the cost of
each request on every candidate, the decision rule at every tolerance of the trade-off curve, and
the sums per model, tag, prompt kind and difficulty. The rule is the router's own (see
``gearshift.routing.engine``): among candidates that fit, the best predicted quality sets a floor
``best − tolerance``; the cheapest candidate (by the router's expected cost, ties to the lower tier)
at or above it is chosen. Context windows are checked against the log's honest token counts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gearshift.audit.candidates import Candidates, match_candidate
from gearshift.audit.costs import FloatArray, IntArray, ModelRates, model_rates
from gearshift.audit.entry import LogEntry, ReadStats
from gearshift.audit.groups import GroupTable
from gearshift.audit.predict import Item, PredictionPool, Prepared
from gearshift.audit.readers.content import count_tokens

ASSUMED_COMPLETION_TOKENS = 256  # when a log has requests but no responses
DEFAULT_TOLERANCES = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
# Predictions are cached in two generations of at most this many prompts each: a prompt used in
# the current generation survives the next turnover, a prompt seen once is forgotten. Memory stays
# bounded, and repeated prompts (the FAQs of a log) are not predicted again.
CACHE_GENERATION = 150_000
DIFFICULTY_BUCKETS = ("0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0")
MAX_TAG_KEYS = 8
# Batches staged (sent to the predictor processes) before the oldest is routed: a few batches of
# slack keep the workers busy through batches with many new prompts.
PIPELINE_DEPTH = 3
_UNPRICED_ORDER = 1e300  # an unpriced candidate is chosen only when nothing priced qualifies


@dataclass(slots=True)
class Staged:
    """A batch whose new prompts are being predicted."""

    batch: list[LogEntry]
    keys: list[int | None]
    handle: Any


@dataclass(slots=True)
class CurvePoint:
    tolerance: float
    requests: int = 0
    routed_cost: float = 0.0
    moved: int = 0
    quality: float = 0.0  # sum of predicted quality of the chosen model
    model_requests: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    model_cost: FloatArray = field(default_factory=lambda: np.zeros(0))


def excerpt(messages: list[dict[str, Any]], limit: int = 220) -> str:
    text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Auditor:
    """Accumulates one audit; ``feed`` batches of entries, then read the public fields."""

    def __init__(
        self,
        candidates: Candidates,
        *,
        tolerances: Iterable[float] = DEFAULT_TOLERANCES,
        assumed_model: str | None = None,
        tag_keys: Iterable[str] = (),
        samples_per_group: int = 3,
        workers: int = 1,
    ) -> None:
        from gearshift.pricing import Pricer
        from gearshift.routing import build_router

        self.candidates = candidates
        router_cfg = candidates.router.model_copy(update={"sticky": False})
        self.router = build_router(candidates.settings, router_cfg)
        # Columns ordered by (tier, name): ``argmin`` keeps the first of equal costs, which is
        # the router's own tie-break.
        profiles = sorted(self.router.profiles, key=lambda p: (p.tier, p.name))
        self.profiles = profiles
        self.names: list[str] = [p.name for p in profiles]
        self.pool = PredictionPool(
            candidates.settings, router_cfg, self.names, workers, router=self.router
        )
        self._inflight: set[int] = set()
        self.pricer = Pricer(candidates.settings.models)
        self.rates: list[ModelRates] = [model_rates(self.pricer, n) for n in self.names]
        self._in = np.array([p.input_per_token for p in profiles])
        self._out = np.array([p.output_per_token for p in profiles])
        self._priced = np.array([p.priced for p in profiles])
        self._context = np.array([p.context_window or 2**62 for p in profiles], dtype=np.int64)
        self.primary = float(self.router.tolerance)
        self.tolerances = sorted({round(t, 4) for t in tolerances} | {round(self.primary, 4)})
        self.curve = {t: CurvePoint(t) for t in self.tolerances}
        for point in self.curve.values():
            point.model_requests = np.zeros(len(self.names), np.int64)
            point.model_cost = np.zeros(len(self.names))
        self.assumed_model = assumed_model
        self.samples_per_group = samples_per_group

        self.cache: dict[int, Prepared | None] = {}  # None: the prompt is unusable
        self._older: dict[int, Prepared | None] = {}
        self.predictions = 0  # prompts the predictor actually ran on
        self.requests = 0
        self.actual_cost = 0.0
        self.quality_logged = 0.0  # predicted quality of the logged model, where it is a candidate
        self.quality_logged_n = 0
        self.quality_routed_on_known = 0.0  # same rows, routed at the primary tolerance
        self.quality_best = 0.0
        self.counted_prompt_tokens = 0
        self.assumed_completion_tokens = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.skipped: dict[str, int] = {}
        self.ts_min = math.inf
        self.ts_max = -math.inf

        self.logged_names: list[str] = []
        self._logged_index: dict[str, int] = {}
        self._logged_rates: list[ModelRates] = []
        self._logged_column: list[int] = []
        self.logged_requests = np.zeros(0, np.int64)
        self.logged_cost = np.zeros(0)

        self.tag_keys = list(dict.fromkeys(tag_keys))[:MAX_TAG_KEYS]
        self.groups: dict[str, GroupTable] = {
            "kind": GroupTable(len(self.names)),
            "difficulty": GroupTable(len(self.names)),
        }
        for key in self.tag_keys:
            self.groups[f"tag:{key}"] = GroupTable(len(self.names))
        for label in DIFFICULTY_BUCKETS:
            self.groups["difficulty"].code(label)
        self.moves: dict[tuple[str, str], int] = {}
        self.move_samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.kind_samples: dict[str, list[dict[str, Any]]] = {}
        self._sampled: set[int] = set()
        self._kind_codes: IntArray = np.zeros(0, np.int64)

    # ---- per batch ------------------------------------------------------------------------

    def _logged(self, name: str) -> int:
        index = self._logged_index.get(name)
        if index is None:
            index = len(self.logged_names)
            self._logged_index[name] = index
            self.logged_names.append(name)
            self._logged_rates.append(model_rates(self.pricer, name))
            column = match_candidate(name, self.names)
            self._logged_column.append(self.names.index(column) if column is not None else -1)
            self.logged_requests = np.append(self.logged_requests, 0)
            self.logged_cost = np.append(self.logged_cost, 0.0)
        return index

    def unpriced_logged(self) -> list[str]:
        return [
            n for n, r in zip(self.logged_names, self._logged_rates, strict=True) if not r.priced
        ]

    def _skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def _remember(self, results: list[tuple[int, Prepared | None]]) -> None:
        if len(self.cache) + len(results) > CACHE_GENERATION:
            self._older = self.cache
            self.cache = {}
        for key, prepared in results:
            self.cache[key] = prepared
            self._inflight.discard(key)
        self.predictions += len(results)

    def _revive(self, key: int) -> bool:
        """Move a prompt from the older generation into the current one, if it is there."""
        if key in self._older:
            self.cache[key] = self._older.pop(key)
            return True
        return False

    def _stored(self, entry: LogEntry) -> Prepared | None:
        """A ledger row's stored predictions, when they cover every candidate."""
        assert entry.predicted is not None
        try:
            quality = tuple(entry.predicted[n] for n in self.names)
        except KeyError as missing:
            self._skip(f"ledger row has no prediction for candidate {missing.args[0]}")
            return None
        return Prepared(quality, entry.difficulty or 0.0, entry.kind or "unknown", 0)

    def stage(self, batch: list[LogEntry]) -> Staged:
        """Key every entry and send prompts not seen before to the predictor (without waiting)."""
        dumps = orjson.dumps
        keys: list[int | None] = []
        pending: list[Item] = []
        for entry in batch:
            if entry.predicted is not None:
                keys.append(None)
                continue
            raw = entry.messages_json
            key = hash(raw) if raw is not None else hash(dumps(entry.messages))
            keys.append(key)
            if key not in self.cache and key not in self._inflight and not self._revive(key):
                self._inflight.add(key)
                pending.append((key, raw if raw is not None else entry.messages))
        return Staged(batch, keys, self.pool.submit(pending) if pending else [])

    def finish(self, staged: Staged) -> None:
        """Wait for a staged batch's predictions, then price and route it."""
        fresh = dict(self.pool.collect(staged.handle))
        rows: list[LogEntry] = []
        prepared: list[Prepared] = []
        prepared_keys: list[int] = []
        for entry, maybe_key in zip(staged.batch, staged.keys, strict=True):
            if maybe_key is None:
                p = self._stored(entry)
                if p is None:
                    continue
            else:
                if maybe_key in fresh:
                    p = fresh[maybe_key]
                elif maybe_key in self.cache or self._revive(maybe_key):
                    p = self.cache[maybe_key]
                else:
                    p = self._recover(entry)
                if p is None:
                    self._skip("messages unusable: not a list of {role, content}, or no text")
                    continue
            if entry.model is None and self.assumed_model is None:
                self._skip("no model named in the line (pass --model)")
                continue
            rows.append(entry)
            prepared.append(p)
            prepared_keys.append(maybe_key if maybe_key is not None else id(entry))
        self._remember(list(fresh.items()))
        if rows:
            self._route(rows, prepared, prepared_keys)

    def feed(self, batch: list[LogEntry]) -> None:
        self.finish(self.stage(batch))

    def close(self) -> None:
        self.pool.close()

    def _recover(self, entry: LogEntry) -> Prepared | None:
        # Predicted for an earlier batch but dropped from the bounded cache since: predict again.
        raw = entry.messages_json
        key = hash(raw) if raw is not None else hash(orjson.dumps(entry.messages))
        results = self.pool.local.predict([(key, raw if raw is not None else entry.messages)])
        self.predictions += 1
        return results[0][1]

    def _route(self, rows: list[LogEntry], prepared: list[Prepared], keys: list[int]) -> None:
        n = len(rows)
        prompt_tokens = [e.prompt_tokens for e in rows]
        if None in prompt_tokens:
            for i, e in enumerate(rows):
                if e.prompt_tokens is None:
                    prompt_tokens[i] = count_tokens(e.message_list())
                    self.counted_prompt_tokens += 1
        completion_tokens = [e.completion_tokens for e in rows]
        if None in completion_tokens:
            missing = [i for i, c in enumerate(completion_tokens) if c is None]
            for i in missing:
                completion_tokens[i] = ASSUMED_COMPLETION_TOKENS
            self.assumed_completion_tokens += len(missing)
        pt = np.array(prompt_tokens, dtype=np.int64)
        ct = np.array(completion_tokens, dtype=np.int64)
        cached = np.array([e.cached_tokens for e in rows], dtype=np.int64)
        default_model = self.assumed_model or ""
        index = self._logged_index
        try:
            logged = np.array([index[e.model or default_model] for e in rows], dtype=np.int64)
        except KeyError:  # a model not seen before: register it
            logged = np.array([self._logged(e.model or default_model) for e in rows], np.int64)
        stamps = [e.ts for e in rows if e.ts is not None]
        if stamps:
            self.ts_min = min(self.ts_min, min(stamps))
            self.ts_max = max(self.ts_max, max(stamps))
        quality = np.array([p.quality for p in prepared], dtype=np.float64).reshape(n, -1)
        est_pt = np.array([p.est_prompt_tokens for p in prepared], dtype=np.int64)
        est_pt = np.where(est_pt > 0, est_pt, pt)

        eligible = (pt + ct)[:, None] <= self._context[None, :]
        fits = eligible.any(axis=1)
        if not fits.all():
            self._skip("longer than every candidate's context window", int((~fits).sum()))
            keep = np.nonzero(fits)[0]
            rows = [rows[i] for i in keep]
            prepared = [prepared[i] for i in keep]
            keys = [keys[i] for i in keep]
            pt, ct, cached, logged = pt[keep], ct[keep], cached[keep], logged[keep]
            quality, est_pt, eligible = quality[keep], est_pt[keep], eligible[keep]
            n = len(rows)
            if n == 0:
                return
        self.requests += n
        self.prompt_tokens += int(pt.sum())
        self.completion_tokens += int(ct.sum())

        cost = np.column_stack([r.cost(pt, ct, cached) for r in self.rates])
        actual = np.zeros(n)
        for li in np.unique(logged):
            mask = logged == li
            actual[mask] = self._logged_rates[li].cost(pt[mask], ct[mask], cached[mask])
        self.actual_cost += float(actual.sum())
        self.logged_requests += np.bincount(logged, minlength=len(self.logged_names))
        self.logged_cost += np.bincount(logged, weights=actual, minlength=len(self.logged_names))

        from gearshift.routing.engine import DEFAULT_COMPLETION_TOKENS

        order = est_pt[:, None] * self._in[None, :] + DEFAULT_COMPLETION_TOKENS * self._out[None, :]
        order = np.where(self._priced[None, :], order, _UNPRICED_ORDER)
        masked = np.where(eligible, quality, -np.inf)
        best = masked.max(axis=1)
        self.quality_best += float(best.sum())
        logged_col = np.array(self._logged_column, dtype=np.int64)[logged]
        known = logged_col >= 0
        idx = np.arange(n)
        q_logged = np.where(known, quality[idx, np.maximum(logged_col, 0)], np.nan)
        self.quality_logged += float(np.nansum(q_logged))
        self.quality_logged_n += int(known.sum())

        primary: tuple[Any, Any] | None = None
        for t, point in self.curve.items():
            within = eligible & (quality >= (best - t - 1e-9)[:, None])
            chosen = np.argmin(np.where(within, order, np.inf), axis=1)
            routed = cost[idx, chosen]
            point.requests += n
            point.routed_cost += float(routed.sum())
            point.moved += int((chosen != logged_col).sum())
            point.quality += float(quality[idx, chosen].sum())
            point.model_requests += np.bincount(chosen, minlength=len(self.names))
            point.model_cost += np.bincount(chosen, weights=routed, minlength=len(self.names))
            if t == round(self.primary, 4):
                primary = (chosen, routed)
        assert primary is not None
        chosen, routed = primary
        self.quality_routed_on_known += float(quality[idx, chosen][known].sum())
        self._group(rows, prepared, chosen, actual, routed, logged_col, quality)
        self._collect_samples(rows, prepared, keys, chosen, actual, routed, logged, best)

    def _group(
        self,
        rows: list[LogEntry],
        prepared: list[Prepared],
        chosen: IntArray,
        actual: FloatArray,
        routed: FloatArray,
        logged_col: IntArray,
        quality: FloatArray,
    ) -> None:
        moved = chosen != logged_col
        q_chosen = quality[np.arange(len(rows)), chosen]
        kinds = self.groups["kind"]
        codes = {"kind": np.array([kinds.code(p.kind) for p in prepared], dtype=np.int64)}
        self._kind_codes = codes["kind"]
        buckets = np.minimum((np.array([p.difficulty for p in prepared]) * 5).astype(np.int64), 4)
        codes["difficulty"] = buckets
        for key in self.tag_keys:
            table = self.groups[f"tag:{key}"]
            codes[f"tag:{key}"] = np.array(
                [table.code(e.tags.get(key, "(none)")) for e in rows], dtype=np.int64
            )
        for name, table in self.groups.items():
            table.add(codes[name], chosen, actual, routed, moved, q_chosen)

    def _collect_samples(
        self,
        rows: list[LogEntry],
        prepared: list[Prepared],
        keys: list[int],
        chosen: IntArray,
        actual: FloatArray,
        routed: FloatArray,
        logged: IntArray,
        best: FloatArray,
    ) -> None:
        limit = self.samples_per_group
        m = len(self.names)
        pair_codes = logged * m + chosen
        counts = np.bincount(pair_codes)
        for code in np.nonzero(counts)[0]:
            pair = (self.logged_names[int(code) // m], self.names[int(code) % m])
            self.moves[pair] = self.moves.get(pair, 0) + int(counts[code])
        # Only rows that can still fill a sample slot are looked at one by one.
        kind_codes = self._kind_codes
        wanted = np.zeros(len(rows), dtype=bool)
        for code in np.unique(kind_codes):
            label = self.groups["kind"].labels[int(code)]
            if len(self.kind_samples.get(label, ())) < limit:
                wanted[np.nonzero(kind_codes == code)[0][: 20 * limit]] = True
        for code in np.nonzero(counts)[0]:
            pair = (self.logged_names[int(code) // m], self.names[int(code) % m])
            if len(self.move_samples.get(pair, ())) < limit:
                wanted[np.nonzero(pair_codes == code)[0][: 20 * limit]] = True
        for i in np.nonzero(wanted)[0]:
            entry = rows[i]
            pair = (self.logged_names[int(logged[i])], self.names[int(chosen[i])])
            kind = prepared[i].kind
            if keys[i] in self._sampled or not entry.message_list():
                continue
            # Samples should differ: a kind's examples start differently, and a move's examples
            # are of different kinds, where the log has them.
            opening = excerpt(entry.message_list())[:12].lower()
            of_kind = self.kind_samples.get(kind, ())
            want_kind = len(of_kind) < limit and all(
                s["prompt"][:12].lower() != opening for s in of_kind
            )
            moved_so_far = self.move_samples.get(pair, ())
            want_move = len(moved_so_far) < limit and all(s["kind"] != kind for s in moved_so_far)
            if not (want_kind or want_move):
                continue
            self._sampled.add(keys[i])
            sample = self._sample(entry, prepared[i], int(chosen[i]), pair[0], float(best[i]))
            sample["saved_usd"] = round(float(actual[i] - routed[i]), 8)
            if want_kind:
                self.kind_samples.setdefault(kind, []).append(sample)
            if want_move:
                self.move_samples.setdefault(pair, []).append(sample)

    def _sample(
        self, entry: LogEntry, p: Prepared, chosen: int, logged: str, best: float
    ) -> dict[str, Any]:
        floor = max(best - self.primary, 0.0)
        name = self.names[chosen]
        predicted = {m: round(q, 3) for m, q in zip(self.names, p.quality, strict=True)}
        price = self._in + self._out
        short = [
            f"{m} {q:.2f}"
            for i, (m, q) in enumerate(zip(self.names, p.quality, strict=True))
            if i != chosen and price[i] < price[chosen] and q < floor - 1e-9
        ]
        below = f"; cheaper, below the floor {floor:.2f}: {', '.join(short)}" if short else ""
        if match_candidate(logged, [name]) is not None:
            why = f"kept on {name}: the best predicted quality is {best:.2f}{below}"
        else:
            why = (
                f"moved to {name}: predicted quality {p.quality[chosen]:.2f} is within the "
                f"tolerance {self.primary:.2f} of the best ({best:.2f}), the cheapest such model"
                + below
            )
        return {
            "prompt": excerpt(entry.message_list()),
            "kind": p.kind,
            "difficulty": round(p.difficulty, 3),
            "tags": dict(entry.tags),
            "logged_model": logged,
            "routed_model": name,
            "predicted": predicted,
            "reason": why,
        }


def run_entries(
    auditor: Auditor,
    entries: Iterable[LogEntry],
    *,
    batch_size: int = 4096,
    on_batch: Callable[[int], None] | None = None,
    ahead: int = PIPELINE_DEPTH,
) -> None:
    """Feed ``entries`` in batches, up to ``ahead`` batches ahead: while workers predict the next
    batches, this process reads and routes. Batches are routed in log order, so the report does
    not depend on how many are in flight."""
    staged: deque[Staged] = deque()

    def done() -> None:
        first = staged.popleft()
        auditor.finish(first)
        if on_batch is not None:
            on_batch(len(first.batch))

    def push(batch: list[LogEntry]) -> None:
        staged.append(auditor.stage(batch))
        while len(staged) > max(ahead, 1):
            done()

    batch: list[LogEntry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= batch_size:
            push(batch)
            batch = []
    if batch:
        push(batch)
    while staged:
        done()


def merge_skips(auditor: Auditor, stats: ReadStats) -> dict[str, int]:
    skipped = dict(stats.skipped)
    for reason, n in auditor.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + n
    return skipped
