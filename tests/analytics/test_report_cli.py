"""``gearshift report`` as a user runs it: a real process, every format, clear errors."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from tests.analytics.conftest import DAY0, crafted, rec, write


def gearshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gearshift", "report", *args], capture_output=True, text=True
    )


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    write(url, crafted())
    return url


def test_text_tables(ledger: str, tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "models:\n"
        + "".join(
            f"  - {{name: {m}, base_url: 'http://127.0.0.1:9/v1', tier: {t}}}\n"
            for t, m in enumerate(("small", "medium", "large"), 1)
        )
        + f"storage: '{ledger}'\n"
    )
    done = gearshift("--config", str(cfg), "--by", "feature", "--since", "2025-03-10")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Spend by feature (2025-03-10T00:00:00Z → now)" in out
    for expected in ("helpdesk", "summary", "TOTAL", "Top cost drivers", "$0.0267", "78.8%"):
        assert expected in out
    assert "Could have been lighter: 1 requests ($0.0100)" in out
    assert "t1:56% t2:22% t3:22%" in out
    # Without a configuration the tiers of unknown model names are unknown: no verdict.
    plain = gearshift("--storage", ledger, "--by", "feature").stdout
    assert "Could have been lighter" not in plain and "?:100%" in plain


def test_csv_for_pipelines(ledger: str) -> None:
    done = gearshift("--storage", ledger, "--by", "team", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["team"] for r in rows] == ["legal", "support", "(untagged)", "TOTAL"]
    total = rows[-1]
    assert Decimal(total["cost_usd"]) == Decimal("0.026723456789")
    assert Decimal(total["savings_usd"]) == Decimal("0.0534")
    assert total["tier_unknown_share"] == "1.0"  # no --config: tiers of these names unknown


def test_json_with_filters_and_until(ledger: str) -> None:
    done = gearshift(
        "--storage", ledger, "--by", "model", "--format", "json", "--where", "team=support",
        "--until", str(DAY0 + 86400),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout, parse_float=Decimal)
    assert [(g["model"], g["requests"]) for g in report["groups"]] == [("small", 2)]
    assert report["totals"]["until"] == "2025-03-11T00:00:00Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "bad time 'last tuesday'"),
        (["--where", "team"], "bad --where 'team'"),
        (["--by", "team name"], "bad --by 'team name'"),
        (["--since", "1d", "--until", "2d"], "--until must be after --since"),
    ],
)
def test_bad_input_is_a_clear_error(ledger: str, args: list[str], message: str) -> None:
    done = gearshift("--storage", ledger, *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stdout == ""


def test_missing_or_foreign_database(tmp_path: Path) -> None:
    done = gearshift("--storage", f"sqlite:///{tmp_path}/nope.db")
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.commit()
    done = gearshift("--storage", f"sqlite:///{tmp_path}/other.db")
    assert done.returncode == 1
    assert "no gearshift ledger" in done.stderr
    done = gearshift("--storage", "mysql://localhost/x")
    assert done.returncode == 1 and "unsupported storage URL" in done.stderr


def test_config_supplies_storage_and_tiers(ledger: str, tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "models:\n"
        "  - {name: small, base_url: 'http://127.0.0.1:9/v1', tier: 1}\n"
        "  - {name: large, base_url: 'http://127.0.0.1:9/v1', tier: 2}\n"
        f"storage: '{ledger}'\n"
    )
    done = gearshift("--config", str(cfg), "--format", "json", "--by", "router")
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)["totals"]
    # 'medium' is not configured here and is in no catalogue: its requests count as unknown.
    assert totals["tier_share"] == {
        "1": round(5 / 9, 4),
        "2": round(2 / 9, 4),
        "unknown": round(2 / 9, 4),
    }


def test_by_day_and_by_kind(ledger: str) -> None:
    days = gearshift("--storage", ledger, "--by", "day", "--format", "csv")
    assert days.returncode == 0, days.stderr
    rows = list(csv.DictReader(io.StringIO(days.stdout)))
    assert [(r["day"], r["requests"]) for r in rows] == [
        ("2025-03-10", "2"),
        ("2025-03-11", "3"),
        ("2025-03-12", "5"),
        ("TOTAL", "10"),
    ]
    kinds = gearshift("--storage", ledger, "--by", "kind", "--format", "json")
    assert kinds.returncode == 0, kinds.stderr
    report = json.loads(kinds.stdout, parse_float=Decimal)
    assert [(g["kind"], g["cost_usd"]) for g in report["groups"]][:2] == [
        ("chat", Decimal("0.0104")),
        ("code", Decimal("0.01")),
    ]
    chat = report["groups"][0]  # every figure per kind, not sums only
    assert (chat["requests"], chat["fallbacks"]) == (4, 1)
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (400, 80)
    assert (chat["latency_p50_ms"], chat["latency_p95_ms"]) == (Decimal("100.0"), Decimal("900.0"))
    assert chat["p95_cost_usd"] == Decimal("0.01")


def test_csv_has_every_figure_the_json_has(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    hit = rec(11, DAY0 + 3 * 86400, "small", "0", "0.01", outcome="cache_hit", prompt_tokens=0)
    write(url, [*crafted(), hit])
    as_json = gearshift("--storage", url, "--by", "feature", "--format", "json")
    as_csv = gearshift("--storage", url, "--by", "feature", "--format", "csv")
    assert as_json.returncode == 0 and as_csv.returncode == 0, as_json.stderr + as_csv.stderr
    report = json.loads(as_json.stdout, parse_float=Decimal)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    for group, row in zip([*report["groups"], report["totals"]], rows, strict=True):
        for name, value in group.items():
            if name == "tier_share":
                for tier, share in value.items():
                    assert row[f"tier_{tier}_share"] == str(share)
            elif name not in ("top_cost_drivers", "since", "until"):  # totals only, not figures
                assert name in row, f"{name} is in the JSON but not in the CSV"
                if value is None:
                    assert row[name] == "", name
                else:  # money exact, integers as they are
                    assert type(value)(row[name]) == value, name
    total = rows[-1]
    assert (total["feature"], total["cache_hits"], total["requests"]) == ("TOTAL", "1", "11")


def test_text_money_is_fixed_point(tmp_path: Path) -> None:
    """Small amounts (a cheap model's requests) read as dollars, never as 6.3e-05."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    write(
        url,
        [
            rec(1, DAY0, "nano", "0.000063", "0.0000466", router=None),
            rec(2, DAY0 + 1, "pico", "0.0000466", "0.0000466", router=None),
            rec(3, DAY0 + 2, "femto", "0.000000000001", "0.000000000001", router=None),
        ],
    )
    done = gearshift("--storage", url, "--by", "model")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"\d[eE][-+]?\d", out) is None, out
    for amount in ("$0.000063", "$0.0000466", "$0.000000000001", "$0.00011", "$-0.0000164"):
        assert amount in out, amount
