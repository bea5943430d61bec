"""``gearshift score``: write predicted difficulty and per-model quality for a JSONL file.

Output rows keep the input's order and ids: ``{"id", "difficulty", "predicted"}``. ``predicted``
covers ``--models`` when given; otherwise a trained router's own models, or (default router) the
models named in each row's ``scores``. For the default router, a model's ability comes from the
catalogue when it knows the name; names it does not know are taken as listed from the lightest
to the strongest. Rows stream through in batches, so memory stays bounded on large files.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

BATCH = 2048


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift score", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="JSONL with 'messages' (or 'prompt') per line")
    p.add_argument("--output", required=True, help="where to write predictions ('-' for stdout)")
    p.add_argument("--router", default="default", help="'default' or a DIR from 'gearshift train'")
    p.add_argument("--models", help="comma-separated models to predict quality for")
    p.add_argument("--quiet", action="store_true", help="no summary on standard error")
    return p


def _batches(path: str) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    import orjson

    from gearshift.errors import InvalidRequest

    batch: list[tuple[int, dict[str, Any]]] = []
    seen = 0
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"{path}, line {lineno}: not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise InvalidRequest(f"{path}, line {lineno}: each line must be a JSON object")
            batch.append((lineno, obj))
            seen += 1
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch
    if seen == 0:
        raise InvalidRequest(f"{path}: no rows (the file is empty)")


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    import orjson

    from gearshift.errors import InvalidRequest
    from gearshift.routing.features import Features, extract
    from gearshift.routing.formats import row_to_request
    from gearshift.routing.predictors import DefaultPredictor, load_predictor
    from gearshift.routing.scoring import profiles_for_names

    predictor = load_predictor(args.router)
    fixed = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if fixed is not None:
        predictor.check_models(fixed)
    elif not isinstance(predictor, DefaultPredictor):
        fixed = list(predictor.model.heads)  # type: ignore[attr-defined]
    fixed_profiles = profiles_for_names(fixed) if fixed else None
    per_row_cache: dict[tuple[str, ...], Any] = {}

    started = time.perf_counter()
    total = 0
    out: IO[bytes] = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        for batch in _batches(args.input):
            feats: list[Features] = []
            for lineno, obj in batch:
                try:
                    feats.append(extract(row_to_request(obj)))
                except ValueError as exc:
                    raise InvalidRequest(f"{args.input}, line {lineno}: {exc}") from None
            if fixed_profiles is not None:
                diff, qual = predictor.predict_many(feats, fixed_profiles)
                names = [p.name for p in fixed_profiles]
                lines = [
                    orjson.dumps(
                        {
                            "id": obj.get("id", lineno),
                            "difficulty": round(float(diff[i]), 5),
                            "predicted": {
                                n: round(float(q), 5) for n, q in zip(names, qual[i], strict=True)
                            },
                        }
                    )
                    for i, (lineno, obj) in enumerate(batch)
                ]
            else:
                assert isinstance(predictor, DefaultPredictor)
                diff_arr = predictor.model.predict_many(feats)[:, 0]
                lines = []
                for i, (lineno, obj) in enumerate(batch):
                    scores = obj.get("scores")
                    names_t = tuple(scores) if isinstance(scores, dict) else ()
                    profs = per_row_cache.get(names_t)
                    if profs is None:
                        profs = per_row_cache[names_t] = profiles_for_names(list(names_t))
                    d = float(diff_arr[i])
                    lines.append(
                        orjson.dumps(
                            {
                                "id": obj.get("id", lineno),
                                "difficulty": round(d, 5),
                                "predicted": {
                                    p.name: round(_quality(d, p.ability), 5) for p in profs
                                },
                            }
                        )
                    )
            out.write(b"\n".join(lines) + b"\n")
            total += len(batch)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    elapsed = time.perf_counter() - started
    if not args.quiet:
        rate = total / elapsed if elapsed > 0 else float("inf")
        print(f"scored {total} prompts in {elapsed:.2f}s ({rate:,.0f}/s)", file=sys.stderr)
    return 0


def _quality(difficulty: float, ability: float) -> float:
    from gearshift.routing.predictors import ability_quality

    return ability_quality(difficulty, ability)
