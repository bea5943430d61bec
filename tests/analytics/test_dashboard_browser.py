"""The dashboard in Debian's headless Chromium (driven by Playwright, no downloaded browser):
it loads without console errors, draws the expected series, and the filters change them.

Set ``GEARSHIFT_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the screenshot in docs/.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.analytics.conftest import rec, write
from tests.conftest import UvicornThread

from gearshift.api.app import create_app
from gearshift.config import parse_settings
from gearshift.ledger.record import LedgerRecord

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("GEARSHIFT_TEST_CHROMIUM") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
ADMIN_KEY = "dash-admin-key"
PRICES = {"small": Decimal("0.0004"), "medium": Decimal("0.004"), "large": Decimal("0.03")}
LATENCY = {"small": 350.0, "medium": 900.0, "large": 2200.0}


def traffic(now: float, n: int = 600) -> list[LedgerRecord]:
    """A week of help-desk, summary and search traffic; most of it routed to the small model."""
    rng = random.Random(7)
    features = [("helpdesk", "support", 0.6), ("summary", "legal", 0.25), ("search", "web", 0.15)]
    out = []
    for i in range(n):
        feature, team, _ = rng.choices(features, weights=[f[2] for f in features])[0]
        model = rng.choices(["small", "medium", "large"], weights=[0.62, 0.25, 0.13])[0]
        tokens = rng.randint(1, 4)
        # Some heavy answers had a light candidate within tolerance (stickiness, fallbacks...).
        near = model == "large" and i % 3 == 0
        predicted = {"small": 0.88, "large": 0.9} if near else {"small": 0.6, "large": 0.9}
        out.append(
            rec(
                i,
                now - rng.uniform(60, 6.5 * 86400),
                model,
                str(PRICES[model] * tokens),
                str(PRICES["large"] * tokens),
                tags={"feature": feature, "team": team},
                prompt_kind=rng.choice(["chat", "faq", "summarise", "code"]),
                key_id=f"key-{team}",
                latency_ms=LATENCY[model] * rng.uniform(0.6, 1.6),
                predicted=predicted,
                tolerance=0.05,
            )
        )
    return out


@pytest.fixture
def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (GEARSHIFT_TEST_CHROMIUM)")
    monkeypatch.setenv("GEARSHIFT_ADMIN_KEY", ADMIN_KEY)
    url = f"sqlite:///{tmp_path}/ledger.db"
    write(url, traffic(time.time()))
    base = {"base_url": "http://127.0.0.1:9/v1"}
    settings = parse_settings(
        {
            "models": [
                {**base, "name": m, "tier": t, "price": {"input_per_mtok": t, "output_per_mtok": t}}
                for t, m in enumerate(PRICES, 1)
            ],
            "routers": [{"name": "auto", "models": list(PRICES)}],
            "storage": url,
            "server": {"admin_key_env": "GEARSHIFT_ADMIN_KEY"},
            "policy": {
                "budgets": [
                    {"name": "support-monthly", "scope": {"team": "support"}, "limit_usd": 40}
                ]
            },
        }
    )
    with UvicornThread(create_app(settings)) as server:
        yield server.url


def series(page: Any, chart: str) -> list[str]:
    names: list[str] = page.eval_on_selector_all(
        f"#{chart} g.series", "els => els.map(e => e.dataset.series)"
    )
    return names


def wait_loads(page: Any, n: int) -> None:
    page.wait_for_selector(f"body[data-loads='{n}']", timeout=15000)


def test_dashboard_renders_and_filters(dashboard: str) -> None:
    from playwright.sync_api import sync_playwright

    assert httpx.get(f"{dashboard}/dashboard").status_code == 200  # the shell: no data
    assert httpx.get(f"{dashboard}/api/dashboard").status_code == 401
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on(
            "console",
            # The first data fetch, before the key is typed, is refused: that 401 is expected.
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and "status of 401" not in m.text
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "request",
            lambda r: (
                problems.append(f"off-box request {r.url}")
                if not r.url.startswith(dashboard)
                else None
            ),
        )
        # The key is asked for by the page and sent in a header, never put in a URL.
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(f"{dashboard}/dashboard")
        wait_loads(page, 1)
        assert page.is_visible("#admin-key-form")
        page.fill("#admin-key", ADMIN_KEY)
        page.click("#admin-key-form button")
        wait_loads(page, 2)
        assert not page.is_visible("#admin-key-form")
        assert not any(ADMIN_KEY in u for u in urls)

        assert set(series(page, "chart-spend-model")) == {"small", "medium", "large"}
        assert set(series(page, "chart-spend-feature")) == {"helpdesk", "summary", "search"}
        assert series(page, "chart-savings") == ["savings", "would have cost", "spend"]
        assert "large p95" in series(page, "chart-latency")
        assert series(page, "chart-mix") == ["small", "medium", "large"]
        assert page.is_visible("#budgets-card")
        assert series(page, "chart-budgets") == ["budget support-monthly"]
        assert page.locator("#drivers table[data-dimension=feature] td").first.inner_text() == (
            "helpdesk"
        )
        lighter = page.inner_text("[data-kpi='Could have been lighter'] .value")
        expected_lighter = page.evaluate("window.gearshiftDashboard.data.totals.lighter_requests")
        near_misses = sum(
            1 for r in traffic(0) if r.served_model == "large" and r.predicted["small"] > 0.85
        )
        assert expected_lighter == near_misses > 0
        assert lighter == str(near_misses)
        spend_all = page.inner_text("[data-kpi='Spend'] .value")
        bars_all = page.locator("#chart-spend-model rect").count()
        assert spend_all.startswith("$") and bars_all > 10
        shot = os.environ.get("GEARSHIFT_DASHBOARD_SCREENSHOT")
        if shot:
            page.screenshot(path=shot, full_page=True)

        # Filter by a tag: the feature chart keeps one series, the totals shrink.
        page.select_option("#f-tag", "feature")
        wait_loads(page, 3)
        page.select_option("#f-value", "summary")
        wait_loads(page, 4)
        assert series(page, "chart-spend-feature") == ["summary"]
        assert page.inner_text("[data-kpi='Spend'] .value") != spend_all
        assert "feature=summary" in page.url
        assert "filtered by feature=summary" in page.inner_text("#status")

        # Narrow the range to a day: hourly periods, fewer requests.
        page.select_option("#f-range", "24h")
        wait_loads(page, 5)
        data = page.evaluate("window.gearshiftDashboard.data")
        assert data["range"]["period_seconds"] == 3600
        assert data["totals"]["requests"] < 600 * 0.25

        page.click("#f-reset")
        wait_loads(page, 6)
        assert set(series(page, "chart-spend-feature")) == {"helpdesk", "summary", "search"}
        browser.close()
    assert problems == []


def test_dashboard_on_an_empty_ledger(tmp_path: Path) -> None:
    """A gateway that has served nothing yet: the page says so, with no script errors."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (GEARSHIFT_TEST_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    url = f"sqlite:///{tmp_path}/ledger.db"
    write(url, [])
    settings = parse_settings({"storage": url})
    problems: list[str] = []
    with UvicornThread(create_app(settings)) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{server.url}/dashboard")
        wait_loads(page, 1)
        assert page.inner_text("[data-kpi='Spend'] .value") == "$0"
        assert page.inner_text("#chart-spend-model .empty") == "No requests in this range."
        assert page.is_hidden("#budgets-card")
        browser.close()
    assert problems == []
