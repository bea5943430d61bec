"""Application feedback (``POST /v1/feedback``) per served model and prompt kind, for reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gearshift.analytics.db import LedgerDB


def feedback_summary(
    db: LedgerDB, since: float | None, until: float | None
) -> list[dict[str, Any]]:
    """Count and mean score of user feedback on requests in ``[since, until)``, by model/kind."""
    if not db.table_exists("feedback"):
        return []
    clauses, params = ["f.source = 'user'"], []
    if since is not None:
        clauses.append("r.ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("r.ts < ?")
        params.append(until)
    rows = db.fetchall(
        "SELECT r.served_model, r.prompt_kind, COUNT(*), AVG(f.score), "
        "SUM(CASE WHEN f.score >= 0.5 THEN 1 ELSE 0 END) "
        "FROM feedback f JOIN requests r ON r.id = f.request_id "
        f"WHERE {' AND '.join(clauses)} GROUP BY r.served_model, r.prompt_kind "
        "ORDER BY COUNT(*) DESC, r.served_model, r.prompt_kind",
        params,
    )
    return [
        {
            "model": model or "-",
            "kind": kind or "-",
            "ratings": int(n),
            "mean_score": round(float(mean), 4),
            "positive_share": round(int(pos) / int(n), 4),
        }
        for model, kind, n, mean, pos in rows
    ]
