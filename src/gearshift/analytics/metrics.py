"""Prometheus metrics fed by the gateway's ledger observer hook, rendered by hand.

``Metrics.observe(record)`` runs once per finished request on the event loop, so it only does a
few dict updates. ``render()`` writes the text exposition format (version 0.0.4). Counters live
in the process; with several workers behind one port ``metrics_for()`` returns the shared kind
(``analytics/metrics_shared.py``), whose counters every worker writes to files that any worker's
``/metrics`` sums, so a scrape reads the whole server whichever worker answers it.

Tag labels are limited to ``tag_keys`` and to ``max_tag_values`` distinct values per tag (later
values count under ``"other"``) so a free-form tag such as a user id cannot blow up the series
count of the scraper.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: keep the gateway's import of this module light
    from gearshift.ledger.record import LedgerRecord

# Seconds; a gateway request spans sub-second cache hits to multi-minute generations.
LATENCY_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
DEFAULT_TAG_KEYS = ("feature", "team")
OTHER = "other"

Labels = tuple[tuple[str, str], ...]
_PROMPT, _COMPLETION = ("type", "prompt"), ("type", "completion")
_CACHED, _REASONING = ("type", "cached"), ("type", "reasoning")


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}"


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # last slot: above every bound
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        # le-buckets are inclusive: the first bound >= seconds (the last slot: above them all)
        self.counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1


# One increment of one table: (table, labels, amount); the latency tables take seconds.
Increment = tuple[str, Labels, int | Decimal]
HISTOGRAMS = ("latency", "ttfb")


class Metrics:
    def __init__(self, tag_keys: Iterable[str] = DEFAULT_TAG_KEYS, max_tag_values: int = 100):
        self.tag_keys = tuple(tag_keys)
        self.max_tag_values = max_tag_values
        # defaultdicts: one hashed update per counter on the request path, nothing else
        self.requests: defaultdict[Labels, int] = defaultdict(int)
        self.tokens: defaultdict[Labels, int] = defaultdict(int)
        self.cost: defaultdict[Labels, Decimal] = defaultdict(Decimal)
        self.counterfactual: defaultdict[Labels, Decimal] = defaultdict(Decimal)
        self.tag_requests: defaultdict[Labels, int] = defaultdict(int)
        self.tag_cost: defaultdict[Labels, Decimal] = defaultdict(Decimal)
        self.tag_savings: defaultdict[Labels, Decimal] = defaultdict(Decimal)
        self.fallbacks: defaultdict[Labels, int] = defaultdict(int)
        self.errors: defaultdict[Labels, int] = defaultdict(int)
        self.deployments: defaultdict[Labels, int] = defaultdict(int)
        self.latency: defaultdict[Labels, _Histogram] = defaultdict(_Histogram)
        self.ttfb: defaultdict[Labels, _Histogram] = defaultdict(_Histogram)
        self._tag_values: dict[str, set[str]] = {k: set() for k in self.tag_keys}

    def observe(self, record: LedgerRecord) -> None:
        for table, labels, amount in self.increments(record):
            getattr(self, table)[labels] += amount
        base: Labels = (("router", record.router or ""), ("model", record.served_model or ""))
        if record.latency_ms is not None:
            self.latency[base].observe(record.latency_ms / 1000)
        if record.ttfb_ms is not None:
            self.ttfb[base].observe(record.ttfb_ms / 1000)

    def increments(self, record: LedgerRecord) -> list[Increment]:
        """What one finished request adds to each counter table (histograms aside): one
        definition for the in-process tables and the shared, multi-worker ones."""
        router = record.router or ""
        model = record.served_model or ""
        base: Labels = (("router", router), ("model", model))
        out: list[Increment] = [("requests", (*base, ("outcome", record.outcome)), 1)]
        if record.prompt_tokens:
            out.append(("tokens", (*base, _PROMPT), record.prompt_tokens))
        if record.completion_tokens:
            out.append(("tokens", (*base, _COMPLETION), record.completion_tokens))
        if record.cached_tokens:
            out.append(("tokens", (*base, _CACHED), record.cached_tokens))
        if record.reasoning_tokens:
            out.append(("tokens", (*base, _REASONING), record.reasoning_tokens))
        out.append(("cost", base, record.cost_usd))
        out.append(("counterfactual", base, record.counterfactual_cost_usd))
        savings = record.counterfactual_cost_usd - record.cost_usd
        for key in self.tag_keys:
            value = record.tags.get(key)
            if value is None:
                continue
            seen = self._tag_values[key]
            if value not in seen:
                if len(seen) >= self.max_tag_values:
                    value = OTHER
                else:
                    seen.add(value)
            tag: Labels = (("tag", key), ("value", value))
            out.append(("tag_requests", tag, 1))
            out.append(("tag_cost", tag, record.cost_usd))
            out.append(("tag_savings", tag, savings))
        for failed in record.fallbacks:
            out.append(("fallbacks", (("router", router), ("model", failed)), 1))
        if record.outcome not in ("ok", "cache_hit"):
            out.append(("errors", (*base, ("status", str(record.status))), 1))
        if record.deployment is not None:
            served: Labels = (("model", model), ("deployment", record.deployment))
            out.append(("deployments", (*served, ("outcome", record.outcome)), 1))
        return out

    __call__ = observe

    def render(self) -> str:
        out: list[str] = []
        _counter(out, "gearshift_requests_total", "Requests finished.", self.requests)
        _counter(out, "gearshift_tokens_total", "Tokens by type.", self.tokens)
        _counter(out, "gearshift_cost_usd_total", "Spend in USD.", self.cost)
        _counter(
            out,
            "gearshift_counterfactual_cost_usd_total",
            "What the requests would have cost on the router's most capable model, USD.",
            self.counterfactual,
        )
        savings = {k: self.counterfactual[k] - self.cost.get(k, Decimal(0)) for k in self.cost}
        _counter(out, "gearshift_savings_usd_total", "Counterfactual minus spend, USD.", savings)
        _counter(
            out, "gearshift_tag_requests_total", "Requests per attribution tag.", self.tag_requests
        )
        _counter(out, "gearshift_tag_cost_usd_total", "Spend per attribution tag.", self.tag_cost)
        _counter(
            out, "gearshift_tag_savings_usd_total", "Savings per attribution tag.", self.tag_savings
        )
        _counter(
            out, "gearshift_fallbacks_total", "Upstream attempts that failed over.", self.fallbacks
        )
        _counter(out, "gearshift_errors_total", "Requests that did not succeed.", self.errors)
        _counter(
            out,
            "gearshift_deployment_requests_total",
            "Requests by the deployment that served them (or was tried last).",
            self.deployments,
        )
        _histogram(
            out, "gearshift_request_duration_seconds", "Total request latency.", self.latency
        )
        _histogram(out, "gearshift_time_to_first_byte_seconds", "Time to first byte.", self.ttfb)
        return "\n".join(out) + "\n"


def _num(value: int | float | Decimal) -> str:
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return repr(value) if isinstance(value, float) else str(value)


def _counter(
    out: list[str], name: str, help_: str, table: dict[Labels, int] | dict[Labels, Decimal]
) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} counter")
    for labels in sorted(table):
        out.append(f"{name}{_labels(labels)} {_num(table[labels])}")


def _histogram(out: list[str], name: str, help_: str, table: dict[Labels, _Histogram]) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} histogram")
    for labels in sorted(table):
        hist = table[labels]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS_S, None), hist.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound is None else repr(bound)
            out.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {cumulative}")
        out.append(f"{name}_sum{_labels(labels)} {_num(hist.sum)}")
        out.append(f"{name}_count{_labels(labels)} {cumulative}")
