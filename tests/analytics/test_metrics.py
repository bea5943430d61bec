"""The Prometheus exposition written by hand: counters, histograms, escaping, bounded labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.analytics.conftest import DAY0, rec

from gearshift.analytics.metrics import Metrics


def lines_of(metrics: Metrics) -> list[str]:
    return metrics.render().splitlines()


def value(metrics: Metrics, series: str) -> str:
    found = [line.rsplit(" ", 1)[1] for line in lines_of(metrics) if line.startswith(series + " ")]
    assert len(found) == 1, series
    return found[0]


def test_counters_and_histogram() -> None:
    m = Metrics()
    m.observe(rec(1, DAY0, "small", "0.0001", "0.01", tags={"feature": "a"}, latency_ms=30.0))
    m.observe(rec(2, DAY0, "small", "0.0002", "0.01", tags={"feature": "a"}, latency_ms=700.0))
    m.observe(rec(3, DAY0, "large", "0", "0", fallbacks=["small"], outcome="error", status=502))
    assert value(m, 'gearshift_requests_total{router="auto",model="small",outcome="ok"}') == "2"
    assert value(m, 'gearshift_cost_usd_total{router="auto",model="small"}') == "0.0003"
    assert value(m, 'gearshift_savings_usd_total{router="auto",model="small"}') == "0.0197"
    assert value(m, 'gearshift_tag_cost_usd_total{tag="feature",value="a"}') == "0.0003"
    assert value(m, 'gearshift_fallbacks_total{router="auto",model="small"}') == "1"
    assert value(m, 'gearshift_errors_total{router="auto",model="large",status="502"}') == "1"
    h = 'gearshift_request_duration_seconds_bucket{router="auto",model="small",le='
    assert value(m, h + '"0.025"}') == "0"
    assert value(m, h + '"0.05"}') == "1"
    assert value(m, h + '"1.0"}') == "2"
    assert value(m, h + '"+Inf"}') == "2"
    assert value(m, 'gearshift_request_duration_seconds_count{router="auto",model="small"}') == "2"
    assert float(
        value(m, 'gearshift_request_duration_seconds_sum{router="auto",model="small"}')
    ) == (0.73)
    # Every family is declared once, with HELP and TYPE before its samples.
    types = [line for line in lines_of(m) if line.startswith("# TYPE")]
    assert len(types) == len(set(types)) == 13


def test_label_values_are_escaped_and_bounded() -> None:
    m = Metrics(max_tag_values=2)
    for i, feature in enumerate(['say "hi"\\n', "b", "c", "d"]):
        m.observe(rec(i, DAY0, "small", "0.001", tags={"feature": feature}))
    out = m.render()
    assert 'gearshift_tag_requests_total{tag="feature",value="say \\"hi\\"\\\\n"} 1' in out
    assert 'gearshift_tag_requests_total{tag="feature",value="other"} 2' in out
    assert 'value="c"' not in out


def test_no_traffic_renders_only_declarations() -> None:
    out = Metrics().render()
    assert all(line.startswith("#") for line in out.splitlines())


def test_shared_metrics_render_like_one_process(tmp_path: Path, monkeypatch: Any) -> None:
    """The multi-worker kind (files summed at scrape) prints exactly what one process would,
    negative savings included; two instances stand in for two workers' files."""
    from prometheus_client import values

    from gearshift.analytics.metrics_shared import SharedMetrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    before = values.ValueClass
    try:
        records = [
            rec(1, DAY0, "small", "0.0001", "0.01", tags={"feature": "a"}, latency_ms=30.0),
            rec(2, DAY0, "small", "0.0002", "0.01", tags={"feature": "a"}, latency_ms=700.0),
            rec(3, DAY0, "large", "0.02", "0.01", fallbacks=["small"], latency_ms=2.0),
            rec(4, DAY0, "large", "0", "0", outcome="error", status=502, tags={"team": "x"}),
        ]
        local = Metrics()
        for r in records:
            local.observe(r)
        values.ValueClass = values.MultiProcessValue(lambda: 101)
        first = SharedMetrics(str(tmp_path))
        for r in records[:2]:
            first.observe(r)
        values.ValueClass = values.MultiProcessValue(lambda: 102)
        second = SharedMetrics(str(tmp_path))
        for r in records[2:]:
            second.observe(r)
        assert len(list(tmp_path.glob("*.db"))) == 2
        assert second.render() == first.render() == local.render()
        assert 'gearshift_savings_usd_total{router="auto",model="large"} -0.01' in local.render()
    finally:
        values.ValueClass = before
