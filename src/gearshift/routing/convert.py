"""Convert public routing data (the layout of ``../shared/data``) to labelled JSONL (DESIGN.md).

Recognised inputs:

* RouteLLM outcome CSVs — a ``prompt`` column and one True/False column per model (MMLU files
  ``mmlu_<subject>.csv``; ``gsm8k_responses.csv`` also has ``<model>_response`` columns).
  Ids are ``mmlu/<subject>/<n>`` and ``gsm8k/<n>``. Costs are estimated from token counts
  (prompt ≈ chars/4; the answer from the response text when present, else a one-letter answer)
  and the list prices in ``cost.json`` when one is found next to the data, else built-in prices.
* RouterArena result JSONL files, one per model (``<model>.jsonl`` with ``global_index``,
  ``question``, ``evaluation_result.score`` and ``inference_cost``); rows are joined on
  ``global_index``; ids are ``routerarena/<global_index>``.
* Labelled JSONL (DESIGN.md; e.g. ``../shared/data/multimodel/*.jsonl``), given as a file: rows
  are checked and written back normalised — ``null`` scores and costs (not recorded) dropped,
  ``category`` and ``source`` kept. ``train`` and ``eval`` price missing costs from list prices.
* A directory holding RouteLLM or RouterArena files (searched recursively), e.g.
  ``../shared/data`` itself. Labelled JSONL files inside a directory are *not* picked up: data
  sets carry different licences (AlpacaEval's is non-commercial), so each is named explicitly.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gearshift.errors import InvalidRequest
from gearshift.routing.tokens import estimate_tokens

__all__ = ["convert_labelled", "convert_path", "convert_routellm_csv", "convert_routerarena"]

# USD per million tokens (input, output), used when no cost.json is found.
_FALLBACK_PRICES = {
    "gpt-4-1106-preview": (10.0, 30.0),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
}
_MMLU_ANSWER_TOKENS = 2


def _prices(search_from: Path) -> dict[str, tuple[float, float]]:
    prices = dict(_FALLBACK_PRICES)
    for parent in [search_from, *search_from.parents][:4]:
        for candidate in parent.glob("**/cost.json"):
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            for model, p in data.items():
                if isinstance(p, dict) and "input_token_price_per_million" in p:
                    prices[model] = (
                        float(p["input_token_price_per_million"]),
                        float(p["output_token_price_per_million"]),
                    )
            return prices
    return prices


def _price_for(model: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    if model in prices:
        return prices[model]
    tail = model.split("/")[-1].lower()
    for name, p in prices.items():
        if name.split("/")[-1].lower() == tail:
            return p
    return None


def _truth(value: str) -> float | None:
    v = value.strip().lower()
    if v in ("true", "1", "1.0", "yes"):
        return 1.0
    if v in ("false", "0", "0.0", "no"):
        return 0.0
    return None


def convert_routellm_csv(
    path: Path, prices: dict[str, tuple[float, float]]
) -> Iterator[dict[str, Any]]:
    name = path.stem
    if name.startswith("mmlu_"):
        prefix = "mmlu/" + name[len("mmlu_") :]
    elif name.startswith("gsm8k"):
        prefix = "gsm8k"
    else:
        prefix = name
    csv.field_size_limit(1 << 26)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "prompt" not in fields:
            raise InvalidRequest(f"{path}: no 'prompt' column (columns: {', '.join(fields)})")
        models = [f for f in fields if f != "prompt" and not f.endswith("_response")]
        for n, rec in enumerate(reader):
            prompt = rec["prompt"]
            scores: dict[str, float] = {}
            for m in models:
                v = _truth(rec.get(m) or "")
                if v is not None:
                    scores[m] = v
            if not scores:
                continue
            costs: dict[str, float] = {}
            p_tokens = estimate_tokens(prompt)
            for m in scores:
                price = _price_for(m, prices)
                if price is None:
                    continue
                response = rec.get(f"{m}_response")
                out = estimate_tokens(response) if response else _MMLU_ANSWER_TOKENS
                costs[m] = round((p_tokens * price[0] + out * price[1]) / 1e6, 10)
            yield {
                "id": f"{prefix}/{n}",
                "category": prefix,
                "messages": [{"role": "user", "content": prompt}],
                "scores": scores,
                "costs": costs,
            }


def convert_routerarena(files: list[Path]) -> Iterator[dict[str, Any]]:
    """Join per-model RouterArena result files on ``global_index``."""
    by_id: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for path in sorted(files):
        model = path.stem
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    gid = str(rec["global_index"])
                    result = rec.get("evaluation_result") or {}
                    score = float(result["score"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise InvalidRequest(
                        f"{path}, line {lineno}: not a RouterArena row ({exc})"
                    ) from None
                row = by_id.get(gid)
                if row is None:
                    row = {
                        "id": f"routerarena/{gid}",
                        # global_index is "<category>_<n>"
                        "category": "routerarena/" + gid.rsplit("_", 1)[0],
                        "messages": [{"role": "user", "content": str(rec.get("question", ""))}],
                        "scores": {},
                        "costs": {},
                    }
                    by_id[gid] = row
                    order.append(gid)
                row["scores"][model] = min(max(score, 0.0), 1.0)
                cost = result.get("inference_cost")
                if cost is not None:
                    row["costs"][model] = float(cost)
    for gid in order:
        yield by_id[gid]


def convert_labelled(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a labelled JSONL file, validated (errors name the line) and normalised."""
    from gearshift.routing.formats import iter_rows

    sources: dict[int, str] = {}
    messages: dict[int, Any] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    obj = None  # iter_rows below reports it with its line number
                if isinstance(obj, dict):
                    if isinstance(obj.get("source"), str):
                        sources[lineno] = obj["source"]
                    messages[lineno] = obj.get("messages") or [
                        {"role": "user", "content": obj.get("prompt", "")}
                    ]
    # iter_rows checks every line (and raises naming it) before anything is written out
    rows = list(iter_rows(path, need_scores=True))
    numbered = sorted(messages)
    for n, row in zip(numbered, rows, strict=True):
        out: dict[str, Any] = {"id": row.id, "messages": messages[n], "scores": row.scores}
        out["costs"] = row.costs
        if row.category:
            out["category"] = row.category
        if n in sources:
            out["source"] = sources[n]
        yield out


def _is_labelled(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            rec = json.loads(fh.readline())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(rec, dict) and "scores" in rec and ("messages" in rec or "prompt" in rec)


def _is_routerarena(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        rec = json.loads(first)
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(rec, dict) and "global_index" in rec and "evaluation_result" in rec


def convert_path(path: str | Path) -> Iterator[dict[str, Any]]:
    """Labelled rows from a file or a directory of the recognised kinds (sorted, deterministic)."""
    root = Path(path)
    if not root.exists():
        raise InvalidRequest(f"{root} does not exist")
    files = sorted(root.rglob("*")) if root.is_dir() else [root]
    if root.is_file() and root.suffix == ".jsonl" and _is_labelled(root):
        yield from convert_labelled(root)
        return
    prices = _prices(root if root.is_dir() else root.parent)
    csvs = [f for f in files if f.suffix == ".csv"]
    arena = [f for f in files if f.suffix == ".jsonl" and _is_routerarena(f)]
    if not csvs and not arena:
        raise InvalidRequest(
            f"{root}: found no RouteLLM CSV (prompt + per-model True/False columns), "
            "RouterArena JSONL or labelled JSONL file to convert"
        )
    for f in csvs:
        yield from convert_routellm_csv(f, prices)
    # RouterArena files are grouped per directory: one file per model answering the same set
    groups: dict[Path, list[Path]] = {}
    for f in arena:
        groups.setdefault(f.parent, []).append(f)
    for group in groups.values():
        yield from convert_routerarena(group)
