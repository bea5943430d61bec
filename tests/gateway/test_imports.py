"""The gateway's hot path imports no heavy library: building and starting the app for the issue's
configuration leaves boto3, psycopg, redis, sklearn, matplotlib, playwright, aiohttp, opentelemetry
and prometheus_client unloaded (each is imported only by the feature that needs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAIServer
from tests.gateway.conftest import issue_config

HEAVY = [
    "boto3",
    "botocore",
    "psycopg",
    "redis",
    "sklearn",
    "matplotlib",
    "playwright",
    "aiohttp",
    "opentelemetry",
    "prometheus_client",
]

SCRIPT = """
import asyncio, json, sys
from gearshift.api.app import create_app
from gearshift.config import parse_settings
app = create_app(parse_settings(json.loads(sys.argv[1])))
asyncio.run(app.startup())
loaded = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
asyncio.run(app.shutdown())
print(json.dumps(loaded))
"""


def test_app_start_imports_nothing_heavy(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    config = issue_config(upstream.base_url, storage=f"sqlite:///{tmp_path}/ledger.db")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config), json.dumps(HEAVY)],
        env={**os.environ, "LARGE_API_KEY": "x"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
