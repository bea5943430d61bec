"""Analytics fixtures: a fresh ledger on SQLite and (when CI provides one) PostgreSQL, filled
through the ledger's own store, and a crafted set of records whose report figures are known."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from gearshift.config import Settings, parse_settings
from gearshift.ledger import LedgerRecord, open_store

# 2025-03-10 00:00:00 UTC, a Monday; crafted traffic lives on 2025-03-10 .. 2025-03-12.
DAY0 = 1741564800.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    base = os.environ.get("GEARSHIFT_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("GEARSHIFT_TEST_POSTGRES_URL is not set")
    import psycopg

    name = f"gs_analytics_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write(url: str, records: Iterable[LedgerRecord]) -> None:
    """Through the ledger's store, exactly as the gateway's writer does."""
    with open_store(url) as store:
        store.insert_many(list(records))


def settings_for(url: str, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "models": [
            {"name": "small", "base_url": "http://127.0.0.1:9/v1", "tier": 1},
            {"name": "medium", "base_url": "http://127.0.0.1:9/v1", "tier": 2},
            {"name": "large", "base_url": "http://127.0.0.1:9/v1", "tier": 3},
        ],
        "routers": [{"name": "auto", "models": ["small", "medium", "large"]}],
        "storage": url,
    }
    data.update(extra)
    return parse_settings(data)


def rec(n: int, ts: float, served: str, cost: str, cf: str = "0.01", **kw: Any) -> LedgerRecord:
    base: dict[str, Any] = {
        "id": f"req-{n}",
        "ts": ts,
        "dialect": "openai",
        "requested_model": "auto",
        "router": "auto",
        "served_model": served,
        "chosen_model": served,
        "counterfactual_model": "large",
        "cost_usd": Decimal(cost),
        "counterfactual_cost_usd": Decimal(cf),
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "latency_ms": 100.0,
        "predicted": {"small": 0.70, "medium": 0.80, "large": 0.90},
        "tolerance": 0.05,
    }
    base.update(kw)
    return LedgerRecord(**base)


def crafted() -> list[LedgerRecord]:
    """Ten requests with hand-checkable totals (see test_queries for the expected figures)."""
    helpdesk = {"feature": "helpdesk", "team": "support"}
    summary = {"feature": "summary", "team": "legal"}
    return [
        # helpdesk: 4 on small, 1 on large although small was within tolerance (0.89 vs 0.9)
        rec(1, DAY0 + 3600, "small", "0.0001", tags=helpdesk, prompt_kind="chat", key_id="k1"),
        rec(2, DAY0 + 7200, "small", "0.0001", tags=helpdesk, prompt_kind="chat", key_id="k1"),
        rec(3, DAY0 + 86400 + 60, "small", "0.0002", tags=helpdesk, prompt_kind="chat"),
        rec(4, DAY0 + 86400 + 120, "small", "0.0002", tags=helpdesk, prompt_kind="faq"),
        rec(
            5,
            DAY0 + 86400 + 180,
            "large",
            "0.01",
            tags=helpdesk,
            prompt_kind="chat",
            predicted={"small": 0.89, "large": 0.9},
            tolerance=0.05,
            fallbacks=["small"],
            latency_ms=900.0,
        ),
        # summary: medium and large, one failure
        rec(6, DAY0 + 2 * 86400, "medium", "0.003", tags=summary, prompt_kind="summarise"),
        rec(7, DAY0 + 2 * 86400 + 10, "medium", "0.003", tags=summary, prompt_kind="summarise"),
        rec(
            8,
            DAY0 + 2 * 86400 + 20,
            "large",
            "0.01",
            tags=summary,
            prompt_kind="code",
            key_id="k2",
            latency_ms=2000.0,
        ),
        rec(
            9,
            DAY0 + 2 * 86400 + 30,
            "",
            "0",
            "0",
            served_model=None,
            tags=summary,
            outcome="error",
            status=502,
            latency_ms=50.0,
        ),
        # untagged, direct model call (no router)
        rec(10, DAY0 + 2 * 86400 + 40, "small", "0.000123456789", "0.000123456789", router=None),
    ]


def refresh_concurrently(url: str, now: float, threads: int = 4) -> None:
    """``rollup.refresh`` from ``threads`` connections released together; re-raises the first
    error any of them hit."""
    import threading

    from gearshift.analytics import rollup
    from gearshift.analytics.db import LedgerDB

    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def refresh() -> None:
        try:
            with LedgerDB(url) as db:
                start.wait()
                rollup.refresh(db, now=now)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=refresh) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise errors[0]
