"""The ledger schema, as small named steps applied in order when a store opens.

Each step runs once per database and is recorded in ``schema_migrations``. To change the schema,
APPEND a step to ``MIGRATIONS`` (never edit or reorder one that has shipped): other packages do
too (policy's keys table, analytics' rollups). A step gives SQL for both backends (``sql``) or
per backend (``sqlite`` / ``postgres``); statements are separated by a ``;`` at the end of a line.
A step may instead (or also) give ``apply``, a function run with the open connection after its SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Backend = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str = ""
    sqlite: str | None = None
    postgres: str | None = None
    apply: Callable[[Any, Backend], None] | None = None

    def statements(self, backend: Backend) -> list[str]:
        text = self.sqlite if backend == "sqlite" else self.postgres
        if text is None:
            text = self.sql
        parts = [p.strip() for p in text.replace(";\r\n", ";\n").split(";\n")]
        return [p.rstrip(";").strip() for p in parts if p.rstrip(";").strip()]


_REQUESTS_COLUMNS = """
    id TEXT PRIMARY KEY,
    ts {real} NOT NULL,
    dialect TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    router TEXT,
    key_id TEXT,
    tags TEXT NOT NULL DEFAULT '{{}}',
    predicted TEXT NOT NULL DEFAULT '{{}}',
    difficulty {real},
    prompt_kind TEXT,
    tolerance {real},
    chosen_model TEXT,
    served_model TEXT,
    fallbacks TEXT NOT NULL DEFAULT '[]',
    stream {bool} NOT NULL DEFAULT {false},
    prompt_tokens {int} NOT NULL DEFAULT 0,
    completion_tokens {int} NOT NULL DEFAULT 0,
    cached_tokens {int} NOT NULL DEFAULT 0,
    cache_write_tokens {int} NOT NULL DEFAULT 0,
    reasoning_tokens {int} NOT NULL DEFAULT 0,
    cost_usd {money} NOT NULL DEFAULT 0,
    counterfactual_model TEXT,
    counterfactual_cost_usd {money} NOT NULL DEFAULT 0,
    price_source TEXT,
    ttfb_ms {real},
    latency_ms {real},
    status INTEGER NOT NULL DEFAULT 200,
    outcome TEXT NOT NULL DEFAULT 'ok',
    error TEXT,
    cost_pusd {int} NOT NULL DEFAULT 0,
    counterfactual_cost_pusd {int} NOT NULL DEFAULT 0
"""

_REQUESTS_INDEXES = """
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_served_model_ts ON requests (served_model, ts);
CREATE INDEX IF NOT EXISTS requests_router_ts ON requests (router, ts);
CREATE INDEX IF NOT EXISTS requests_key_id_ts ON requests (key_id, ts);
"""


def _requests_table(real: str, bool_: str, false: str, int_: str, money: str) -> str:
    cols = _REQUESTS_COLUMNS.format(real=real, bool=bool_, false=false, int=int_, money=money)
    return f"CREATE TABLE IF NOT EXISTS requests ({cols});\n" + _REQUESTS_INDEXES


M001_REQUESTS = Migration(
    name="m001_requests",
    # SQLite has no exact NUMERIC: money is decimal text there (and exact picodollar integers).
    sqlite=_requests_table("REAL", "INTEGER", "0", "INTEGER", "TEXT"),
    postgres=_requests_table("DOUBLE PRECISION", "BOOLEAN", "FALSE", "BIGINT", "NUMERIC"),
)

M002_REQUEST_TAGS = Migration(
    name="m002_request_tags",
    # One row per (request, tag) so reports group by any tag through an index; backfilled from
    # the JSON ``tags`` column for rows written before this step existed.
    sqlite="""
CREATE TABLE IF NOT EXISTS request_tags (
    request_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (request_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS request_tags_key_value_ts ON request_tags (key, value, ts);
INSERT OR IGNORE INTO request_tags (request_id, key, value, ts)
    SELECT r.id, j.key, CAST(j.value AS TEXT), r.ts FROM requests r, json_each(r.tags) j;
""",
    postgres="""
CREATE TABLE IF NOT EXISTS request_tags (
    request_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (request_id, key)
);
CREATE INDEX IF NOT EXISTS request_tags_key_value_ts ON request_tags (key, value, ts);
INSERT INTO request_tags (request_id, key, value, ts)
    SELECT r.id, j.key, j.value, r.ts FROM requests r, jsonb_each_text(r.tags::jsonb) j
    ON CONFLICT DO NOTHING;
""",
)

M003_FEEDBACK = Migration(
    name="m003_feedback",
    # Judge or user feedback on a served request, for the learning loop.
    sqlite="""
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL, ts REAL NOT NULL, score REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'user', comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id);
""",
    postgres="""
CREATE TABLE IF NOT EXISTS feedback (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, score DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL DEFAULT 'user', comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id);
""",
)

M004_KEYS = Migration(
    name="m004_keys",
    # Virtual keys (gearshift.policy.keys): only the SHA-256 of a key is stored, never the key.
    # ``updated_at`` moves on every change, so gateways poll (count, max(updated_at)) cheaply.
    sql="""
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    team TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    budget_usd DOUBLE PRECISION,
    budget_period TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
""",
)

M005_ANALYTICS_ROLLUP = Migration(
    name="m005_analytics_rollup",
    # Hourly and daily aggregates of ``requests`` for fast reports (gearshift.analytics.rollup
    # fills them at report time and documents each column); ``width`` is 3600 or 86400 seconds.
    sql="""
CREATE TABLE IF NOT EXISTS analytics_rollup (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL, ok INTEGER NOT NULL,
    requests BIGINT NOT NULL, fallbacks BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL, cost_pico BIGINT NOT NULL,
    counterfactual_pico BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_rollup_hist (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL, ok INTEGER NOT NULL,
    metric TEXT NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL,
    total DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_rollup_kind (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL, ok INTEGER NOT NULL,
    prompt_kind TEXT NOT NULL, requests BIGINT NOT NULL, cost_pico BIGINT NOT NULL,
    counterfactual_pico BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_rollup_lighter (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL,
    within_tol TEXT NOT NULL, requests BIGINT NOT NULL, cost_pico BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_rollup_wp ON analytics_rollup (width, period_start);
CREATE INDEX IF NOT EXISTS analytics_rollup_hist_wp ON analytics_rollup_hist (width, period_start);
CREATE INDEX IF NOT EXISTS analytics_rollup_kind_wp ON analytics_rollup_kind (width, period_start);
CREATE INDEX IF NOT EXISTS analytics_rollup_lighter_wp
    ON analytics_rollup_lighter (width, period_start);
CREATE TABLE IF NOT EXISTS analytics_rollup_state (
    width INTEGER PRIMARY KEY, rolled_until BIGINT NOT NULL
);
""",
)

M006_LEARNING = Migration(
    name="m006_learning",
    # The learning loop (gearshift.learning): judged traffic samples in the labelled format of
    # DESIGN.md (prompts only for sampled requests of routers with learning on; deleted after the
    # router's retention_days), and every router promotion / rollback with its evaluation.
    sqlite="""
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, router TEXT, kind TEXT,
    messages TEXT NOT NULL, scores TEXT NOT NULL, costs TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL, judge TEXT,
    judge_cost_usd REAL NOT NULL DEFAULT 0, reference_cost_usd REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS labels_router_ts ON labels (router, ts);
CREATE TABLE IF NOT EXISTS router_promotions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, router TEXT NOT NULL, ts REAL NOT NULL,
    action TEXT NOT NULL, candidate TEXT, evaluation TEXT NOT NULL DEFAULT '{}', note TEXT
);
""",
    postgres="""
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, router TEXT, kind TEXT,
    messages TEXT NOT NULL, scores TEXT NOT NULL, costs TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL, judge TEXT,
    judge_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    reference_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS labels_router_ts ON labels (router, ts);
CREATE TABLE IF NOT EXISTS router_promotions (
    id BIGSERIAL PRIMARY KEY, router TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL, candidate TEXT, evaluation TEXT NOT NULL DEFAULT '{}', note TEXT
);
""",
)

M007_REQUEST_DEPLOYMENT = Migration(
    name="m007_request_deployment",
    # Which deployment of the served model answered (models may list several ``deployments``;
    # "default" for a model that lists none). NULL on rows written before this step.
    sql="ALTER TABLE requests ADD COLUMN deployment TEXT;",
)

M008_ROLLUP_BY_KIND = Migration(
    name="m008_rollup_by_kind",
    # Reports by prompt kind show every figure the others do: the kind rollup gets all the sums
    # and its own histograms, the eligible sets a prompt kind. The rollup (a cache of the raw
    # rows, which are never deleted) is emptied, so the next report rolls it up again.
    sql="""
DROP TABLE IF EXISTS analytics_rollup_kind;
DROP TABLE IF EXISTS analytics_rollup_lighter;
CREATE TABLE IF NOT EXISTS analytics_rollup_kind (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL, ok INTEGER NOT NULL,
    prompt_kind TEXT NOT NULL, requests BIGINT NOT NULL, fallbacks BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL, counterfactual_pico BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_rollup_kind_hist (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL,
    ok INTEGER NOT NULL, prompt_kind TEXT NOT NULL, metric TEXT NOT NULL,
    bucket INTEGER NOT NULL, n BIGINT NOT NULL, total DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_rollup_lighter (
    width INTEGER NOT NULL, period_start BIGINT NOT NULL, router TEXT NOT NULL,
    served_model TEXT NOT NULL, key_id TEXT NOT NULL, tags TEXT NOT NULL,
    within_tol TEXT NOT NULL, prompt_kind TEXT NOT NULL, requests BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_rollup_kind_wp ON analytics_rollup_kind (width, period_start);
CREATE INDEX IF NOT EXISTS analytics_rollup_kind_hist_wp
    ON analytics_rollup_kind_hist (width, period_start);
CREATE INDEX IF NOT EXISTS analytics_rollup_lighter_wp
    ON analytics_rollup_lighter (width, period_start);
DELETE FROM analytics_rollup;
DELETE FROM analytics_rollup_hist;
DELETE FROM analytics_rollup_state;
""",
)

M009_ROLLUP_OUTCOMES = Migration(
    name="m009_rollup_outcomes",
    # Reports by outcome use the ledger's names: the rollup's ``ok`` column keeps each failure's
    # own outcome (error, client_disconnect, rejected, invalid: 3..6; ok 1, cache_hit 2) instead
    # of 0 for all of them. Emptied, so the next report rolls the raw rows up again.
    sql="""
DELETE FROM analytics_rollup;
DELETE FROM analytics_rollup_hist;
DELETE FROM analytics_rollup_kind;
DELETE FROM analytics_rollup_kind_hist;
DELETE FROM analytics_rollup_lighter;
DELETE FROM analytics_rollup_state;
""",
)

# Ordered; append only.
MIGRATIONS: list[Migration] = [
    M001_REQUESTS,
    M002_REQUEST_TAGS,
    M003_FEEDBACK,
    M004_KEYS,
    M005_ANALYTICS_ROLLUP,
    M006_LEARNING,
    M007_REQUEST_DEPLOYMENT,
    M008_ROLLUP_BY_KIND,
    M009_ROLLUP_OUTCOMES,
]
