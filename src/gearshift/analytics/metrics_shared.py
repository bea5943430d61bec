"""Metrics that add up across the worker processes of one server.

With ``gearshift serve --workers N`` the kernel hands each connection to any worker, so counters
kept in one process make every scrape read a random worker's share. Here each worker writes its
counters through ``prometheus_client``'s multiprocess mode: one memory-mapped file per process in
``PROMETHEUS_MULTIPROC_DIR`` (a write is an mmap store, no system call), and ``/metrics``, in
whichever worker answers, sums every file. A worker that exits leaves its file, so totals never
drop when uvicorn replaces a worker. Replicas on several machines are separate scrape targets:
Prometheus sums them (``sum(rate(gearshift_requests_total[5m]))``), as for any service.

The sums are kept as ``multiprocess_mode="sum"`` gauges because a savings increment can be
negative (a fallback to a dearer model), which a Prometheus counter refuses; the page itself is
rendered by ``analytics/metrics.py`` with the same names, types and labels as a single process.
Amounts are doubles in the files: USD figures are rounded to 1e-10 when rendered, far below any
price's resolution, so sums of exact per-request costs read as exact.

The tag-cardinality cap (``max_tag_values``) is kept per process: with N workers a tag shows at
most N x ``max_tag_values`` values before the rest count as ``"other"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gearshift.analytics.metrics import (
    DEFAULT_TAG_KEYS,
    HISTOGRAMS,
    LATENCY_BUCKETS_S,
    Labels,
    Metrics,
)

if TYPE_CHECKING:
    from gearshift.ledger.record import LedgerRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Table -> its label names, in the order the single-process page prints them.
LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "requests": ("router", "model", "outcome"),
    "tokens": ("router", "model", "type"),
    "cost": ("router", "model"),
    "counterfactual": ("router", "model"),
    "tag_requests": ("tag", "value"),
    "tag_cost": ("tag", "value"),
    "tag_savings": ("tag", "value"),
    "fallbacks": ("router", "model"),
    "errors": ("router", "model", "status"),
    "deployments": ("model", "deployment", "outcome"),
}
USD_TABLES = frozenset({"cost", "counterfactual", "tag_cost", "tag_savings"})
USD_PLACES = Decimal("1e-10")
PREFIX = "gearshift_shared_"  # file-level names; the page uses the public ones


def metrics_for(tag_keys: Iterable[str] = DEFAULT_TAG_KEYS) -> Metrics:
    """The shared kind when ``PROMETHEUS_MULTIPROC_DIR`` is set (``gearshift serve`` sets it for
    several workers), else in-process counters (no files, nothing to clean up)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        return SharedMetrics(directory, tag_keys)
    return Metrics(tag_keys)


class SharedMetrics(Metrics):
    def __init__(
        self, directory: str, tag_keys: Iterable[str] = DEFAULT_TAG_KEYS, max_tag_values: int = 100
    ) -> None:
        super().__init__(tag_keys, max_tag_values)
        from prometheus_client import CollectorRegistry, Gauge, values

        if not os.path.isdir(directory):
            from gearshift.errors import ConfigError

            raise ConfigError(f"{MULTIPROC_ENV} names {directory!r}, which is not a directory")
        if values.ValueClass.__name__ != "MmapedValue" or os.environ.get(MULTIPROC_ENV) != (
            directory
        ):
            # prometheus_client picks its value class when first imported; the variable may have
            # been set after that (tests, embedding), so pick again for this directory.
            os.environ[MULTIPROC_ENV] = directory
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.directory = directory
        self._values: dict[tuple[str, Labels], Any] = {}
        registry = CollectorRegistry()  # private: the process-wide default registry stays clean
        self._gauges: dict[str, Any] = {
            table: Gauge(PREFIX + table, table, names, registry=registry, multiprocess_mode="sum")
            for table, names in LABEL_NAMES.items()
        }
        for table in HISTOGRAMS:
            self._gauges[table] = Gauge(
                PREFIX + table,
                table,
                ("router", "model", "slot"),
                registry=registry,
                multiprocess_mode="sum",
            )
            self._gauges[table + "_sum"] = Gauge(
                PREFIX + table + "_sum",
                table,
                ("router", "model"),
                registry=registry,
                multiprocess_mode="sum",
            )

    def observe(self, record: LedgerRecord) -> None:
        value = self._value
        for table, labels, amount in self.increments(record):
            value(table, labels).inc(float(amount))
        base: Labels = (("router", record.router or ""), ("model", record.served_model or ""))
        for table, ms in (("latency", record.latency_ms), ("ttfb", record.ttfb_ms)):
            if ms is None:
                continue
            seconds = ms / 1000
            value(table, (*base, ("slot", str(_slot(seconds))))).inc(1.0)
            value(table + "_sum", base).inc(seconds)

    def _value(self, table: str, labels: Labels) -> Any:
        """The mmap-backed value of one series, looked up once: prometheus_client's own
        ``labels()`` lookup costs several microseconds per call."""
        key = (table, labels)
        found = self._values.get(key)
        if found is None:
            child = self._gauges[table].labels(*[v for _, v in labels])
            found = self._values[key] = child._value  # the child's value: inc() and nothing else
        return found

    __call__ = observe

    def render(self) -> str:
        """Every worker's files summed, rendered as one process would."""
        from prometheus_client.multiprocess import MultiProcessCollector

        total = Metrics(self.tag_keys, self.max_tag_values)
        collector = MultiProcessCollector(None, self.directory)  # type: ignore[no-untyped-call]
        for family in collector.collect():  # type: ignore[no-untyped-call]
            table = family.name.removeprefix(PREFIX)
            for sample in family.samples:
                _add_sample(total, table, sample.labels, sample.value)
        return Metrics.render(total)


def _slot(seconds: float) -> int:
    from bisect import bisect_left

    return bisect_left(LATENCY_BUCKETS_S, seconds)


def _add_sample(total: Metrics, table: str, labels: dict[str, str], value: float) -> None:
    if table in LABEL_NAMES:
        key: Labels = tuple((name, labels[name]) for name in LABEL_NAMES[table])
        if table in USD_TABLES:
            getattr(total, table)[key] += Decimal(repr(value)).quantize(USD_PLACES).normalize()
        else:
            getattr(total, table)[key] += round(value)
        return
    hist_table = table.removesuffix("_sum")
    if hist_table not in HISTOGRAMS:
        return  # a file from another program sharing the directory
    base: Labels = (("router", labels["router"]), ("model", labels["model"]))
    hist = getattr(total, hist_table)[base]
    if table.endswith("_sum"):
        hist.sum += value
    else:
        hist.counts[int(labels["slot"])] += round(value)
