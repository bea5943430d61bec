"""Light share per quality tolerance on examples/helpdesk.jsonl with the two-tier configuration.

    .venv/bin/python bench/tolerance_share.py [--log examples/helpdesk.jsonl]

The configuration the docs show: ``small`` (``tier: 1``, $0.25/$1.25 per Mtok) and ``large``
(``tier: 3``, $15/$75), both known to the router only by tier. Each logged request is routed by
the real engine (``build_router`` + ``Router.decide``, default router) at each tolerance; prints
JSON with the share sent to ``small`` and the predicted quality gap (large − small) quantiles.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOLERANCES = (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)


def two_tier_settings() -> Any:
    from gearshift.config import parse_settings

    return parse_settings(
        {
            "models": [
                {
                    "name": "small",
                    "provider": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "tier": 1,
                    "price": {"input_per_mtok": 0.25, "output_per_mtok": 1.25},
                },
                {
                    "name": "large",
                    "provider": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "tier": 3,
                    "price": {"input_per_mtok": 15, "output_per_mtok": 75},
                },
            ],
            "routers": [{"name": "auto", "models": ["small", "large"], "quality_tolerance": 0.1}],
        }
    )


def main() -> int:
    import numpy as np

    from gearshift.routing import build_router
    from gearshift.routing.formats import row_to_request

    p = argparse.ArgumentParser()
    p.add_argument("--log", type=Path, default=ROOT / "examples" / "helpdesk.jsonl")
    args = p.parse_args()
    settings = two_tier_settings()
    router = build_router(settings, settings.routers[0])
    requests = []
    for line in args.log.read_text(encoding="utf-8").splitlines():
        body = json.loads(line)["request"]
        requests.append(row_to_request(body))
    gaps = []
    shares: dict[str, float] = {}
    for tol in TOLERANCES:
        small = 0
        for req in requests:
            decision = router.decide(req, tolerance=tol)
            small += decision.chosen == "small"
            if tol == 0.0:
                gaps.append(decision.predicted["large"] - decision.predicted["small"])
        shares[f"{tol:g}"] = round(small / len(requests), 4)
    q = np.quantile(np.asarray(gaps), [0.1, 0.25, 0.5, 0.75, 0.9])
    print(
        json.dumps(
            {
                "log": str(args.log),
                "requests": len(requests),
                "abilities": {p.name: p.ability for p in router.profiles},
                "light_share_by_tolerance": shares,
                "predicted_gap_quantiles_10_25_50_75_90": [round(float(v), 4) for v in q],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
