"""Rows that land late, in hours the rollup already holds (a spool replay after a ledger outage),
are in the next report exactly once, through the hourly and the daily rollup, on SQLite and
PostgreSQL, also when reports refresh concurrently."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from tests.analytics.conftest import DAY0, crafted, rec, refresh_concurrently, write
from tests.analytics.test_queries import NOW, groups, report

from gearshift.analytics import reconcile, render, rollup
from gearshift.analytics.db import LedgerDB

D = Decimal
H = rollup.HOUR
ROLLED_DAY_HOUR = NOW - 30 * H  # 2025-03-18 18:00: its day is in the daily rollup
ROLLED_HOUR = NOW - 5 * H  # 2025-03-19 19:00: in the hourly rollup, its day not yet rolled


def on_time() -> list[Any]:
    return [
        *crafted(),
        rec(11, ROLLED_DAY_HOUR + 10, "medium", "0.002", "0.01", tags={"feature": "late"}),
        rec(12, ROLLED_HOUR + 10, "small", "0.001", "0.01", tags={"feature": "late"}),
    ]


def late() -> list[Any]:
    return [
        rec(13, ROLLED_DAY_HOUR + 20, "large", "0.04", "0.04", tags={"feature": "late"}),
        # a quarter second before an hour boundary: the SQL per-hour count must floor it into
        # the same hour as the Python aggregation does (PostgreSQL's CAST would round it up)
        rec(14, ROLLED_HOUR - 0.25, "small", "0.001", "0.01", tags={"feature": "late"}),
    ]


def rollup_sums(db: LedgerDB) -> dict[int, int]:
    rows = db.fetchall("SELECT width, sum(requests) FROM analytics_rollup GROUP BY width")
    return {int(w): int(n) for w, n in rows}


def normal(cube: rollup.Cube) -> dict[str, Any]:
    hists = {
        k: [{b: (c, round(float(t), 6)) for b, (c, t) in h.items()} for h in pair]
        for hists in (cube.hists, cube.kind_hists)
        for k, pair in hists.items()
    }
    return {"cells": cube.cells, "kinds": cube.kinds, "lighter": cube.lighter, "h": hists}


def assert_rollup_matches_rows(db: LedgerDB) -> None:
    """Bucket for bucket, both rollups equal a direct aggregation of the raw rows."""
    days = rollup.rolled_until(db, rollup.DAY)
    hours = rollup.rolled_until(db, H)
    assert days is not None and hours is not None
    for width, lo, hi in ((rollup.DAY, int(DAY0), days), (H, int(DAY0), hours)):
        assert normal(rollup.load_rollup(db, width, lo, hi)) == normal(
            rollup.aggregate(db, lo, hi, width)
        )


@contextmanager
def no_write_lock(db: LedgerDB) -> Iterator[None]:
    def refuse() -> Any:
        raise AssertionError("refresh took the write lock with nothing to do")

    db.write_transaction = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        del db.write_transaction


def test_late_rows_in_rolled_hours_count_once(ledger_url: str) -> None:
    write(ledger_url, on_time())
    report(ledger_url, "model")  # rolls every complete hour and day up
    write(ledger_url, late())  # written after their hours were rolled: a spool replay
    rep = report(ledger_url, "model")
    t = rep["totals"]
    assert t["requests"] == 14
    assert t["cost_usd"] == D("0.026723456789") + D("0.002") + D("0.001") + D("0.04") + D("0.001")
    assert (t["prompt_tokens"], t["completion_tokens"]) == (1400, 280)
    assert t["tier_share"] == {"1": round(7 / 13, 4), "2": round(3 / 13, 4), "3": round(3 / 13, 4)}
    assert groups(rep, "model")["large"]["cost_usd"] == D("0.06")
    by_day = {g["day"]: (g["requests"], g["cost_usd"]) for g in report(ledger_url, "day")["groups"]}
    assert by_day["2025-03-18"] == (2, D("0.042"))
    assert by_day["2025-03-19"] == (2, D("0.002"))
    late_feature = groups(report(ledger_url, "feature", collapse=True), "feature")["late"]
    assert (late_feature["requests"], late_feature["cost_usd"]) == (4, D("0.044"))
    with LedgerDB(ledger_url) as db:
        # 03-19 is not a rolled day yet, so rows 12 and 14 are only in the hourly rollup
        assert rollup_sums(db) == {H: 14, rollup.DAY: 12}
        assert_rollup_matches_rows(db)


def test_second_refresh_changes_nothing_and_takes_no_write_lock(ledger_url: str) -> None:
    write(ledger_url, on_time())
    report(ledger_url, "model")
    write(ledger_url, late())
    first = render.to_json(report(ledger_url, "feature"))
    with LedgerDB(ledger_url) as db:
        before = rollup_sums(db)
        with no_write_lock(db):
            assert reconcile.stale_hours(db, NOW - H) == []
            rollup.refresh(db, now=NOW)
        assert rollup_sums(db) == before == {H: 14, rollup.DAY: 12}
    assert render.to_json(report(ledger_url, "feature")) == first


def test_concurrent_refreshes_reconcile_once(ledger_url: str) -> None:
    write(ledger_url, on_time())
    report(ledger_url, "model")
    write(ledger_url, late())
    refresh_concurrently(ledger_url, NOW)
    with LedgerDB(ledger_url) as db:
        assert rollup_sums(db) == {H: 14, rollup.DAY: 12}
        assert_rollup_matches_rows(db)
    assert report(ledger_url, "model")["totals"]["requests"] == 14


@pytest.mark.parametrize("hour", [NOW - 2 * H, NOW - H - reconcile.RECHECK_S])
def test_recheck_window_edges(ledger_url: str, hour: float) -> None:
    """The last and the first hour of the recheck window (hours rolled until NOW - 1 h) are
    both reconciled."""
    write(ledger_url, crafted())
    report(ledger_url, "model")
    write(ledger_url, [rec(20, hour + 1, "small", "0.5", "1")])
    assert report(ledger_url, "model")["totals"]["requests"] == 11
    with LedgerDB(ledger_url) as db:
        assert rollup_sums(db)[H] == 11
