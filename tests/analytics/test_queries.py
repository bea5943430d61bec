"""Report figures on a crafted ledger, asserted exactly, on SQLite and PostgreSQL, through raw rows
and through the daily rollup (both must give the same answer)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from tests.analytics.conftest import (
    DAY0,
    crafted,
    rec,
    refresh_concurrently,
    settings_for,
    write,
)

from gearshift.analytics import queries, render, rollup
from gearshift.analytics.db import LedgerDB

NOW = DAY0 + 10 * 86400  # long after the crafted traffic: every day can be rolled up
D = Decimal


def report(
    url: str, by: str, *, refresh: bool = True, collapse: bool = False, **kw: Any
) -> dict[str, Any]:
    filters = kw.pop("filters", None)
    with LedgerDB(url) as db:
        cells = queries.collect(
            db,
            kw.get("since"),
            kw.get("until"),
            now=NOW,
            refresh=refresh,
            collapse=collapse,
            dimensions=kw.get("dimensions"),
        )
    return queries.build_report(cells, by, settings_for(url), filters)


def groups(rep: dict[str, Any], by: str) -> dict[str, dict[str, Any]]:
    return {g[by]: g for g in rep["groups"]}


def test_totals_exact(ledger_url: str) -> None:
    write(ledger_url, crafted())
    t = report(ledger_url, "feature")["totals"]
    assert t["requests"] == 10
    assert t["errors"] == 1
    assert t["fallbacks"] == 1
    assert t["prompt_tokens"] == 1000 and t["completion_tokens"] == 200
    assert t["cost_usd"] == D("0.026723456789")
    assert t["counterfactual_cost_usd"] == D("0.080123456789")
    assert t["savings_usd"] == D("0.0534")
    assert t["savings_pct"] == round(100 * 0.0534 / 0.080123456789, 2)
    assert t["avg_cost_usd"] == D("0.0026723456789")
    assert t["p95_cost_usd"] == D("0.01")
    assert (t["latency_p50_ms"], t["latency_p80_ms"], t["latency_p95_ms"]) == (100, 100, 2000)
    assert t["tier_share"] == {"1": round(5 / 9, 4), "2": round(2 / 9, 4), "3": round(2 / 9, 4)}
    assert t["lighter_requests"] == 1 and t["lighter_cost_usd"] == D("0.01")


def test_group_by_feature_team_model_key_router_day(ledger_url: str) -> None:
    write(ledger_url, crafted())
    by_feature = report(ledger_url, "feature")
    assert [g["feature"] for g in by_feature["groups"]] == ["summary", "helpdesk", "(untagged)"]
    f = groups(by_feature, "feature")
    assert (f["helpdesk"]["requests"], f["helpdesk"]["cost_usd"]) == (5, D("0.0106"))
    assert f["helpdesk"]["counterfactual_cost_usd"] == D("0.05")
    assert f["helpdesk"]["savings_usd"] == D("0.0394")
    assert f["helpdesk"]["savings_pct"] == 78.8
    assert f["helpdesk"]["lighter_requests"] == 1
    assert (f["summary"]["requests"], f["summary"]["errors"]) == (4, 1)
    assert f["summary"]["cost_usd"] == D("0.016")
    assert f["(untagged)"]["savings_usd"] == D(0)

    team = groups(report(ledger_url, "team"), "team")
    assert {k: v["requests"] for k, v in team.items()} == {
        "support": 5,
        "legal": 4,
        "(untagged)": 1,
    }
    model = groups(report(ledger_url, "model"), "model")
    assert {k: v["cost_usd"] for k, v in model.items()} == {
        "large": D("0.02"),
        "medium": D("0.006"),
        "small": D("0.000723456789"),
        "(none)": D(0),
    }
    assert model["large"]["latency_p95_ms"] == 2000
    assert model["small"]["tier_share"] == {"1": 1.0}
    key = groups(report(ledger_url, "key"), "key")
    assert {k: v["cost_usd"] for k, v in key.items()} == {
        "k1": D("0.0002"),
        "k2": D("0.01"),
        "(anonymous)": D("0.016523456789"),
    }
    router = groups(report(ledger_url, "router"), "router")
    assert (router["auto"]["requests"], router["(direct)"]["requests"]) == (9, 1)
    day = report(ledger_url, "day")
    assert [(g["day"], g["requests"], g["cost_usd"]) for g in day["groups"]] == [
        ("2025-03-10", 2, D("0.0002")),
        ("2025-03-11", 3, D("0.0104")),
        ("2025-03-12", 5, D("0.016123456789")),
    ]


def test_top_cost_drivers(ledger_url: str) -> None:
    write(ledger_url, crafted())
    drivers = report(ledger_url, "model")["totals"]["top_cost_drivers"]
    assert [(d["name"], d["cost_usd"]) for d in drivers["kind"]] == [
        ("chat", D("0.0104")),
        ("code", D("0.01")),
        ("summarise", D("0.006")),
        ("faq", D("0.0002")),
        ("(unknown)", D("0.000123456789")),
    ]
    assert drivers["feature"][0]["name"] == "summary"
    assert drivers["feature"][0]["share_pct"] == round(100 * 0.016 / 0.026723456789, 2)
    assert drivers["key"][0]["name"] == "(anonymous)"


def test_time_range_and_filters(ledger_url: str) -> None:
    write(ledger_url, crafted())
    day1 = report(ledger_url, "model", since=DAY0 + 86400, until=DAY0 + 2 * 86400)
    assert day1["totals"]["requests"] == 3
    assert day1["totals"]["cost_usd"] == D("0.0104")
    assert day1["totals"]["since"] == "2025-03-11T00:00:00Z"
    support_small = report(ledger_url, "model", filters={"team": "support", "model": "small"})
    assert support_small["totals"]["requests"] == 4
    assert support_small["totals"]["cost_usd"] == D("0.0006")


def test_rollup_and_raw_agree(ledger_url: str) -> None:
    write(ledger_url, crafted())
    raw = report(ledger_url, "feature", refresh=False)  # nothing rolled yet: all raw rows
    rolled = report(ledger_url, "feature")  # rolls every day up first
    with LedgerDB(ledger_url) as db:
        assert rollup.rolled_until(db) == DAY0 + 9 * 86400  # NOW minus the lag, floored
        assert rollup.rolled_until(db, rollup.HOUR) == NOW - 3600
        for width in (rollup.DAY, rollup.HOUR):
            rows = db.fetchone(
                "SELECT sum(requests) FROM analytics_rollup WHERE width = ?", (width,)
            )
            assert rows is not None and int(rows[0]) == 10
    assert render.to_json(raw) == render.to_json(rolled)
    merged_in_db = report(ledger_url, "feature", collapse=True)  # days merged by the database
    assert render.to_json(merged_in_db) == render.to_json(rolled)
    for by in ("feature", "model", "day"):  # histograms merged down to the report's dimension
        lean = report(ledger_url, by, collapse=by != "day", dimensions=[by])
        assert render.to_json(lean) == render.to_json(report(ledger_url, by))
    by_kind = groups(report(ledger_url, "kind", collapse=True), "kind")
    assert (by_kind["chat"]["requests"], by_kind["chat"]["cost_usd"]) == (4, D("0.0104"))
    # A range that starts mid-day and spans > 3 days mixes a raw edge with rolled days.
    mixed = report(ledger_url, "feature", since=DAY0 + 43200, until=DAY0 + 5 * 86400)
    assert mixed["totals"]["requests"] == 8
    assert mixed["totals"]["cost_usd"] == D("0.026523456789")


def test_refresh_is_idempotent_and_late_rows_count(ledger_url: str) -> None:
    write(ledger_url, crafted())
    report(ledger_url, "model")
    report(ledger_url, "model")  # a second refresh must not roll anything twice
    write(ledger_url, [rec(11, NOW - 60, "small", "0.5", "1")])  # this hour: not rolled yet
    t = report(ledger_url, "model")["totals"]
    assert t["requests"] == 11
    assert t["cost_usd"] == D("0.526723456789")
    assert report(ledger_url, "day")["groups"][-1]["requests"] == 1
    with LedgerDB(ledger_url) as db:
        rows = db.fetchone("SELECT sum(requests) FROM analytics_rollup WHERE width = 86400")
        assert rows is not None and int(rows[0]) == 10


def test_json_is_exact_and_parsable(ledger_url: str) -> None:
    write(ledger_url, crafted())
    text = render.to_json(report(ledger_url, "feature"))
    data = json.loads(text, parse_float=Decimal)
    assert set(data) == {"groups", "totals"}
    assert data["totals"]["cost_usd"] == D("0.026723456789")
    assert data["groups"][0]["feature"] == "summary"


def test_empty_ledger(ledger_url: str) -> None:
    write(ledger_url, [])
    rep = report(ledger_url, "feature")
    assert rep["groups"] == []
    assert rep["totals"]["requests"] == 0 and rep["totals"]["cost_usd"] == D(0)
    assert rep["totals"]["latency_p50_ms"] is None


def test_plan_covers_range_with_days_then_hours_then_raw() -> None:
    day, hour = 86400, 3600
    assert queries.plan(0, 10 * day, {}, (day, hour)) == ([], [(0, 10 * day)])
    rolled = {day: 6 * day, hour: 7 * day + 5 * hour}
    # 0.5 d .. 8.5 d: whole days 1-6 rolled, hours at both edges, raw beyond the rolled hours
    assert queries.plan(0.5 * day + 60, 8.5 * day, rolled, (day, hour)) == (
        [(hour, 13 * hour, day), (day, day, 6 * day), (hour, 6 * day, 7 * day + 5 * hour)],
        [(0.5 * day + 60, 13.0 * hour), (7.0 * day + 5 * hour, 8.5 * day)],
    )
    assert queries.plan(day, 2 * day, rolled, (hour,)) == ([(hour, day, 2 * day)], [])


def test_parse_time_and_duration() -> None:
    assert queries.parse_duration("7d") == 7 * 86400
    assert queries.parse_time("12h", now=100000) == 100000 - 43200
    assert queries.parse_time("2025-03-10", now=0) == DAY0
    with pytest.raises(ValueError, match="bad time"):
        queries.parse_time("last tuesday", now=0)


def test_histogram_percentile_precision() -> None:
    from gearshift.analytics.rows import latency_bucket

    values = [1.0 + i * 0.37 for i in range(1000)]
    hist: rollup.Hist = {}
    for v in values:
        rollup.add_to_hist(hist, latency_bucket(v), 1, v)
    exact = sorted(values)[949]  # nearest rank of p95 over 1000 values
    approx = rollup.percentile(hist, 0.95)
    assert approx is not None and abs(approx - exact) / exact < rollup.BUCKET_RATIO - 1


def test_concurrent_reports_roll_up_once(ledger_url: str) -> None:
    write(ledger_url, crafted())
    refresh_concurrently(ledger_url, NOW)
    with LedgerDB(ledger_url) as db:
        for width in (rollup.HOUR, rollup.DAY):
            rows = db.fetchone(
                "SELECT sum(requests) FROM analytics_rollup WHERE width = ?", (width,)
            )
            assert rows is not None and int(rows[0]) == 10


def test_days_summed_from_hours_equal_days_from_rows(ledger_url: str) -> None:
    """The daily rollup is summed from the hourly one inside the database; it must equal a
    direct aggregation of the raw rows by day, bucket for bucket."""
    write(ledger_url, crafted())

    def normal(cube: rollup.Cube) -> dict[str, Any]:
        hists = {
            k: [{b: (c, float(t)) for b, (c, t) in h.items()} for h in pair]
            for hists in (cube.hists, cube.kind_hists)
            for k, pair in hists.items()
        }
        return {"cells": cube.cells, "kinds": cube.kinds, "lighter": cube.lighter, "h": hists}

    with LedgerDB(ledger_url) as db:
        rollup.refresh(db, now=NOW)
        from_hours = rollup.load_rollup(db, rollup.DAY, int(DAY0), int(DAY0) + 3 * 86400)
        from_rows = rollup.aggregate(db, DAY0, DAY0 + 3 * 86400, rollup.DAY)
    assert normal(from_hours) == normal(from_rows)
    assert {k[5] for k in from_rows.lighter} == {"large", "large,small"}


def test_by_kind_has_every_figure_from_rows_and_from_the_rollup(ledger_url: str) -> None:
    write(ledger_url, crafted())
    for refresh in (False, True):  # raw rows first; then the rolled-up hours and days
        by_kind = report(ledger_url, "kind", refresh=refresh, collapse=True, dimensions=["kind"])
        chat = groups(by_kind, "kind")["chat"]
        assert (chat["requests"], chat["fallbacks"]) == (4, 1)
        assert (chat["prompt_tokens"], chat["completion_tokens"]) == (400, 80)
        assert (chat["latency_p50_ms"], chat["latency_p95_ms"]) == (100.0, 900.0)
        assert chat["p95_cost_usd"] == D("0.01")
        # request 5 went to large although small was within tolerance
        assert (chat["lighter_requests"], chat["lighter_cost_usd"]) == (1, D("0.01"))
        assert groups(by_kind, "kind")["code"]["latency_p50_ms"] == 2000.0
        by_model = report(ledger_url, "model", refresh=refresh, collapse=True, dimensions=["model"])
        assert by_kind["totals"] == by_model["totals"]
        # kind as a filter: the chat requests by model
        chat_models = report(
            ledger_url,
            "model",
            refresh=refresh,
            collapse=True,
            dimensions=["model", "kind"],
            filters={"kind": "chat"},
        )
        per_model = {
            m: (g["requests"], g["prompt_tokens"]) for m, g in groups(chat_models, "model").items()
        }
        assert per_model == {"small": (3, 300), "large": (1, 100)}
        assert chat_models["totals"]["latency_p95_ms"] == 900.0


def test_a_rollup_left_by_an_older_gearshift_is_rebuilt(ledger_url: str) -> None:
    """Kind rollups of the m005 shape held sums only: the report (and the store's migration
    m008) replace them and roll the raw rows up again."""
    write(ledger_url, crafted())
    with LedgerDB(ledger_url) as db:
        rollup.refresh(db, now=NOW)
        for table in ("analytics_rollup_kind", "analytics_rollup_kind_hist"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DROP TABLE analytics_rollup_lighter")
        for statement in rollup.ROLLUP_DDL:  # the old kind and lighter tables, as m005 made them
            db.execute(statement)
        db.execute("DELETE FROM schema_migrations WHERE name = 'm008_rollup_by_kind'")
        assert rollup.rolled_until(db) is not None
    chat = groups(report(ledger_url, "kind", collapse=True), "kind")["chat"]
    assert (chat["prompt_tokens"], chat["latency_p95_ms"], chat["lighter_requests"]) == (
        400,
        900.0,
        1,
    )
    write(ledger_url, [])  # the gateway's store opens it: m008 runs (and empties the rollup)
    with LedgerDB(ledger_url) as db:
        assert rollup.rolled_until(db) is None
    chat = groups(report(ledger_url, "kind", collapse=True), "kind")["chat"]
    assert (chat["prompt_tokens"], chat["latency_p95_ms"]) == (400, 900.0)
