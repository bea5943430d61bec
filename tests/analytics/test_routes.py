"""The analytics routes on a real gearshift: access control, assets, bad input, data shape."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from tests.analytics.conftest import crafted, settings_for, write
from tests.conftest import UvicornThread

from gearshift.api.app import create_app


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    write(url, crafted())
    return url


def test_open_without_admin_key(ledger: str) -> None:
    with UvicornThread(create_app(settings_for(ledger))) as server:
        page = httpx.get(f"{server.url}/dashboard")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert 'src="/dashboard/static/dashboard.js"' in page.text
        js = httpx.get(f"{server.url}/dashboard/static/dashboard.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        missing = httpx.get(f"{server.url}/dashboard/static/secrets.txt")
        assert missing.status_code == 404
        assert "no dashboard asset" in missing.json()["error"]["message"]
        assert missing.json()["error"]["code"] == "not_found"  # a file, not a model

        data = httpx.get(f"{server.url}/api/dashboard?since=2025-03-10&until=2025-03-14")
        assert data.status_code == 200
        body = json.loads(data.text, parse_float=Decimal)
        assert body["totals"]["cost_usd"] == Decimal("0.026723456789")
        # Four days (more than three): one period per day, gaps as zeros.
        assert body["range"]["period_seconds"] == 86400
        assert body["series"]["periods"] == [1741564800 + d * 86400 for d in range(4)]
        large = body["series"]["spend_by_model"]["large"]
        assert large == [0, Decimal("0.01"), Decimal("0.01"), 0]
        assert body["tags"] == {"feature": ["helpdesk", "summary"], "team": ["support", "legal"]}
        assert body["budgets"] == []
        filtered = httpx.get(f"{server.url}/api/dashboard?since=2025-03-10&team=legal").json()
        assert filtered["totals"]["requests"] == 4 and filtered["filters"] == {"team": "legal"}

        bad = httpx.get(f"{server.url}/api/report?since=yesterday-ish")
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        assert "bad time 'yesterday-ish'" in bad.json()["error"]["message"]


def test_admin_key_variable_unset_locks_everything(
    ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GS_ADMIN_UNSET", raising=False)
    settings = settings_for(ledger, server={"admin_key_env": "GS_ADMIN_UNSET"})
    with UvicornThread(create_app(settings)) as server:
        for path in ("/api/dashboard", "/api/report", "/metrics"):
            response = httpx.get(f"{server.url}{path}", headers={"authorization": "Bearer x"})
            assert response.status_code == 401
            assert "GS_ADMIN_UNSET, which is not set" in response.json()["error"]["message"]


def test_admin_key_checked(ledger: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GS_ADMIN", "right")
    settings = settings_for(ledger, server={"admin_key_env": "GS_ADMIN"})
    with UvicornThread(create_app(settings)) as server:
        # The page is a shell with no data; the data needs the key, in a header only.
        assert httpx.get(f"{server.url}/dashboard").status_code == 200
        api = f"{server.url}/api/dashboard"
        assert httpx.get(api).status_code == 401
        assert httpx.get(api, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(api, headers={"authorization": "Bearer right"}).status_code == 200
        in_url = httpx.get(f"{api}?admin_key=right", headers={"authorization": "Bearer right"})
        assert in_url.status_code == 401 and "never in the URL" in in_url.json()["error"]["message"]
        ok = httpx.get(f"{server.url}/metrics", headers={"x-api-key": "right"})
        assert ok.status_code == 200 and ok.text.startswith("# HELP gearshift_requests_total")


def test_dashboard_survives_a_lost_database_connection(ledger_url: str) -> None:
    if not ledger_url.startswith("postgresql"):
        pytest.skip("a dropped server connection is a PostgreSQL matter")
    import psycopg

    write(ledger_url, crafted())
    with UvicornThread(create_app(settings_for(ledger_url))) as server:
        url = f"{server.url}/api/report?by=team&since=2025-03-01"
        assert httpx.get(url).json()["totals"]["requests"] == 10
        with psycopg.connect(ledger_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        first = httpx.get(url)  # may fail: the cached connection was cut
        assert first.status_code in (200, 500)
        again = httpx.get(url)
        assert again.status_code == 200 and again.json()["totals"]["requests"] == 10


def test_api_report_is_the_cli_json(ledger_url: str, tmp_path: Path) -> None:
    """The same ledger and query give the same JSON from ``gearshift report --format json`` and
    ``GET /api/report``, feedback included; ``where=NAME=VALUE`` filters as ``--where`` does."""
    write(ledger_url, crafted())
    cfg = tmp_path / "gearshift.yaml"
    settings = settings_for(ledger_url)
    cfg.write_text(json.dumps(settings.model_dump(mode="json", exclude_defaults=True)))
    with UvicornThread(create_app(settings)) as server:
        rated = httpx.post(f"{server.url}/v1/feedback", json={"request_id": "req-3", "score": 1})
        assert rated.status_code == 200, rated.text
        queries = [
            ("by=feature", ["--by", "feature"]),
            (
                "by=model&where=team=support&where=kind=chat&since=2025-03-10&until=2025-03-12",
                [
                    "--by",
                    "model",
                    "--where",
                    "team=support",
                    "--where",
                    "kind=chat",
                    "--since",
                    "2025-03-10",
                    "--until",
                    "2025-03-12",
                ],
            ),
            ("by=day&team=legal", ["--by", "day", "--where", "team=legal"]),
        ]
        for query, args in queries:
            done = subprocess.run(
                [sys.executable, "-m", "gearshift", "report", "--config", str(cfg),
                 "--format", "json", *args],
                capture_output=True, text=True,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            cli = json.loads(done.stdout, parse_float=Decimal)
            api = httpx.get(f"{server.url}/api/report?{query}")
            assert api.status_code == 200, api.text
            assert json.loads(api.text, parse_float=Decimal) == cli
            assert set(cli) == {"groups", "totals", "feedback"}
        support = json.loads(httpx.get(f"{server.url}/api/report?where=team=support").text)
        assert support["totals"]["requests"] == 5  # a filter, not a tag named 'where'
        assert support["feedback"] == [
            {"model": "small", "kind": "chat", "ratings": 1, "mean_score": 1.0,
             "positive_share": 1.0}
        ]  # fmt: skip
        bad = httpx.get(f"{server.url}/api/report?where=team")
        assert bad.status_code == 400
        assert "bad where 'team': use NAME=VALUE" in bad.json()["error"]["message"]
        bad = httpx.get(f"{server.url}/api/report?by=team%20name")
        assert bad.status_code == 400 and "bad by 'team name'" in bad.json()["error"]["message"]
