"""Budget counters start from what the ledger already records for the current period, so a
restart does not hand a team a fresh budget. Reads ``requests`` (and ``request_tags``) written by
the ledger; a missing table (a ledger never written) counts as nothing spent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gearshift.policy.db import open_database

log = logging.getLogger("gearshift.policy")

_PICO_PER_NANO = 1000


def spent_since(storage_url: str, queries: Sequence[tuple[Mapping[str, str], float]]) -> list[int]:
    """For each (tag scope, period start): nano-USD spent by matching requests since then."""
    db = open_database(storage_url)
    try:
        out = []
        for scope, since in queries:
            sql = "SELECT COALESCE(SUM(r.cost_pusd), 0) FROM requests r WHERE r.ts >= ?"
            params: list[object] = [since]
            for k, v in scope.items():
                if k == "key":
                    sql += " AND r.key_id = ?"
                    params.append(v)
                else:
                    sql += (
                        " AND EXISTS (SELECT 1 FROM request_tags t WHERE t.request_id = r.id"
                        " AND t.key = ? AND t.value = ?)"
                    )
                    params += [k, v]
            try:
                row = db.fetchone(sql, params)
            except Exception as exc:  # no ledger tables yet: nothing has been spent
                log.info("budget seeding found no ledger to read (%s)", exc.__class__.__name__)
                return [0] * len(queries)
            out.append(int(row[0] or 0) // _PICO_PER_NANO if row else 0)
        return out
    finally:
        db.close()
