"""The labelled sources the default router learns from and is measured on, read from ../shared/data.

Each source is a list of rows with a prompt and per-model scores in [0, 1]. Model names are
normalised across sources (``canonical_model``), so ``mistralai/Mixtral-8x7B-Instruct-v0.1``
(RouteLLM) and ``Mixtral-8x7B-Instruct-v0.1`` (MMLU-Pro, arena-bench) are one model.

``PERMISSIVE`` sources may train the bundled router; ``MEASURE_ONLY`` sources (AlpacaEval 1 and 2,
CC BY-NC 4.0) are only ever scored, never trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gearshift.routing.formats import LabelledRow

__all__ = [
    "LICENCES",
    "MEASURE_ONLY",
    "PERMISSIVE",
    "Source",
    "canonical_model",
    "load_source",
    "load_sources",
]

# source name -> (path under the data folder, licence)
LICENCES: dict[str, tuple[str, str]] = {
    "mmlu": ("routellm/mmlu", "Apache-2.0 (RouteLLM evaluation data)"),
    "gsm8k": ("routellm/gsm8k_responses.csv", "Apache-2.0 (RouteLLM evaluation data)"),
    "routerarena": ("routerarena", "Apache-2.0 (RouterArena)"),
    "mmlu_pro": ("multimodel/mmlu_pro.jsonl", "Apache-2.0 repo, MIT data (TIGER-AI-Lab/MMLU-Pro)"),
    "arena_bench": (
        "multimodel/arena_bench_v1.jsonl",
        "Apache-2.0 (lmarena/arena-hard-auto arena-bench-v1)",
    ),
    "alpaca_eval1": ("multimodel/alpaca_eval1.jsonl", "CC BY-NC 4.0: measure only"),
    "alpaca_eval2": ("multimodel/alpaca_eval2.jsonl", "CC BY-NC 4.0: measure only"),
}
PERMISSIVE: tuple[str, ...] = ("mmlu", "gsm8k", "routerarena", "mmlu_pro", "arena_bench")
MEASURE_ONLY: tuple[str, ...] = ("alpaca_eval1", "alpaca_eval2")


def canonical_model(name: str) -> str:
    """One spelling per model across sources: the vendor prefix dropped, lower-cased."""
    return name.rsplit("/", 1)[-1].strip().lower()


@dataclass(slots=True)
class Source:
    name: str
    licence: str
    rows: list[LabelledRow]

    @property
    def models(self) -> list[str]:
        return sorted({m for r in self.rows for m in r.scores})


def _canonical(row: LabelledRow, source: str) -> LabelledRow:
    scores = {canonical_model(m): v for m, v in row.scores.items()}
    costs = {canonical_model(m): v for m, v in row.costs.items()}
    return LabelledRow(row.id, row.request, scores, costs, row.category or source)


def load_source(data: str | Path, name: str) -> Source:
    """One source's rows, model names canonical, in file order (deterministic)."""
    from gearshift.routing.convert import convert_path
    from gearshift.routing.formats import row_to_request

    rel, licence = LICENCES[name]
    path = Path(data) / rel
    rows: list[LabelledRow] = []
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                obj = json.loads(line)
                rows.append(
                    LabelledRow(
                        str(obj["id"]),
                        row_to_request(obj),
                        {m: float(v) for m, v in obj["scores"].items() if v is not None},
                        {m: float(v) for m, v in obj.get("costs", {}).items() if v is not None},
                        str(obj.get("category") or ""),
                    )
                )
    else:
        for obj in convert_path(path):
            rows.append(
                LabelledRow(
                    str(obj["id"]),
                    row_to_request(obj),
                    obj["scores"],
                    obj.get("costs", {}),
                    str(obj.get("category", "")),
                )
            )
    return Source(name, licence, [_canonical(r, name) for r in rows])


def load_sources(data: str | Path, names: Sequence[str]) -> dict[str, Source]:
    return {n: load_source(data, n) for n in names}
