"""The learning loop's tables in the ledger database: labels (judged samples), feedback and
router promotions. Plain functions over a ``LedgerStore`` (blocking: call them in a thread from
the event loop)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from gearshift.chat import ChatRequest, ImagePart
from gearshift.ledger.store import LedgerStore

__all__ = [
    "Label",
    "RequestOwner",
    "active_candidates",
    "fetch_labels",
    "insert_feedback",
    "insert_label",
    "latest_promotion_id",
    "promotion_history",
    "purge_labels",
    "record_promotion",
    "request_messages",
    "request_owner",
]

# A user's thumbs map onto the label scale as a clear good / clear bad answer.
THUMBS = {"up": 1.0, "down": 0.0}


def request_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The conversation in the labelled format's OpenAI shape (text only; an image is noted)."""
    out: list[dict[str, Any]] = []
    for message in request.messages:
        text = message.text()
        if any(isinstance(p, ImagePart) for p in message.content):
            text = (text + "\n[image]").strip()
        out.append({"role": message.role, "content": text})
    return out


@dataclass(slots=True)
class Label:
    id: str  # the sampled request's id
    ts: float
    router: str
    kind: str | None
    messages: list[dict[str, Any]]
    scores: dict[str, float]
    costs: dict[str, float] = field(default_factory=dict)
    source: str = "judge"
    judge: str | None = None
    judge_cost_usd: float = 0.0
    reference_cost_usd: float = 0.0


def insert_label(store: LedgerStore, label: Label) -> None:
    store.execute_write(
        "INSERT INTO labels (id, ts, router, kind, messages, scores, costs, source, judge, "
        "judge_cost_usd, reference_cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (
            label.id,
            label.ts,
            label.router,
            label.kind,
            json.dumps(label.messages, ensure_ascii=False),
            json.dumps(label.scores),
            json.dumps(label.costs),
            label.source,
            label.judge,
            label.judge_cost_usd,
            label.reference_cost_usd,
        ),
    )


def fetch_labels(
    store: LedgerStore,
    *,
    router: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[dict[str, Any]]:
    """Labelled rows (DESIGN.md format, plus ``ts``, ``router`` and ``category`` = kind), oldest
    first. A user's feedback on a sampled request replaces the judge's score for the model that
    served it (the user saw that answer; the judge only read it)."""
    clauses, params = [], []
    for column, op, value in (("router", "=", router), ("ts", ">=", since), ("ts", "<", until)):
        if value is not None:
            clauses.append(f"l.{column} {op} ?")
            params.append(value)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = store.execute_read_dicts(
        "SELECT l.*, r.served_model AS served_model, f.score AS feedback "
        "FROM labels l LEFT JOIN requests r ON r.id = l.id "
        "LEFT JOIN (SELECT request_id, AVG(score) AS score FROM feedback "
        "WHERE source = 'user' GROUP BY request_id) f ON f.request_id = l.id"
        f"{where} ORDER BY l.ts, l.id",
        params,
    )
    out = []
    for row in rows:
        scores = {str(k): float(v) for k, v in json.loads(row["scores"]).items()}
        served = row.get("served_model")
        if row.get("feedback") is not None and served in scores:
            scores[str(served)] = float(row["feedback"])
        out.append(
            {
                "id": row["id"],
                "messages": json.loads(row["messages"]),
                "scores": scores,
                "costs": json.loads(row["costs"] or "{}"),
                "source": row["source"],
                "category": row["kind"],
                "router": row["router"],
                "ts": float(row["ts"]),
            }
        )
    return out


def purge_labels(store: LedgerStore, router: str, before_ts: float) -> int:
    """Delete a router's stored prompts and labels older than its retention."""
    return store.execute_write(
        "DELETE FROM labels WHERE router = ? AND ts < ?", (router, before_ts)
    )


@dataclass(slots=True, frozen=True)
class RequestOwner:
    key_id: str | None
    router: str | None
    served_model: str | None
    kind: str | None


def request_owner(store: LedgerStore, request_id: str) -> RequestOwner | None:
    rows = store.execute_read(
        "SELECT key_id, router, served_model, prompt_kind FROM requests WHERE id = ?",
        (request_id,),
    )
    if not rows:
        return None
    key_id, router, served, kind = rows[0]
    return RequestOwner(key_id, router, served, kind)


def insert_feedback(
    store: LedgerStore, request_id: str, score: float, comment: str | None, source: str = "user"
) -> None:
    store.execute_write(
        "INSERT INTO feedback (request_id, ts, score, source, comment) VALUES (?, ?, ?, ?, ?)",
        (request_id, time.time(), score, source, comment),
    )


# ---- promotions ---------------------------------------------------------------------------------


def record_promotion(
    store: LedgerStore,
    router: str,
    action: str,
    candidate: str | None,
    evaluation: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """``candidate`` is a candidate router's JSON text, or None for the configured predictor."""
    store.execute_write(
        "INSERT INTO router_promotions (router, ts, action, candidate, evaluation, note) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (router, time.time(), action, candidate, json.dumps(evaluation or {}), note),
    )


def latest_promotion_id(store: LedgerStore) -> int:
    rows = store.execute_read("SELECT MAX(id) FROM router_promotions")
    return int(rows[0][0] or 0)


def promotion_history(store: LedgerStore, router: str) -> list[dict[str, Any]]:
    """Every promotion / rollback of ``router``, oldest first."""
    rows = store.execute_read_dicts(
        "SELECT id, ts, action, candidate, evaluation, note FROM router_promotions "
        "WHERE router = ? ORDER BY id",
        (router,),
    )
    for row in rows:
        row["evaluation"] = json.loads(row["evaluation"] or "{}")
    return rows


def active_candidates(store: LedgerStore) -> dict[str, str | None]:
    """Router -> the candidate JSON it serves now (None: back to its configured predictor)."""
    rows = store.execute_read(
        "SELECT p.router, p.candidate FROM router_promotions p JOIN "
        "(SELECT router, MAX(id) AS id FROM router_promotions GROUP BY router) last "
        "ON last.id = p.id"
    )
    return {str(router): (None if cand is None else str(cand)) for router, cand in rows}
