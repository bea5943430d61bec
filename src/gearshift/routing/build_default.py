"""Build the bundled default router from the permissive labelled sources (``make router``).

    python -m gearshift.routing.build_default --data ../shared/data --out src/gearshift/routing/data

The default router predicts the quality of every (prompt, model) pair with a low-rank
item-response model (``irt.py``), fitted by ``irt_train.fit_quality_model`` on the permissive
sources only (``corpus.PERMISSIVE``: RouteLLM MMLU and GSM8K, RouterArena, MMLU-Pro, arena-bench;
never AlpacaEval, MT-Bench, RouterBench or Chatbot Arena conversations). Each source contributes
at most ``SOURCE_ROWS`` rows (seeded sample), so the two big exam sets do not drown the rest.
``default_router.json`` records every source with its licence and the rows it contributed, the
options, the data's digest and the trained models. The build is deterministic: the same data
gives the same bytes (the reproducibility test runs it twice under different hash seeds).

``--data`` may also name labelled JSONL files (each one a source named by its file stem), which
is how the tests build a small router from crafted rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build", "kinds_digest", "main"]

MODEL_FILE = "default_router.npz"


def _threads_single() -> None:
    # BLAS sums in a thread-count-dependent order; one thread keeps the build byte-reproducible
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _load(data: Sequence[str | Path]) -> list[Any]:
    from gearshift.routing.corpus import LICENCES, PERMISSIVE, Source, load_source
    from gearshift.routing.formats import read_labelled

    sources: list[Source] = []
    for item in data:
        path = Path(item)
        if path.is_dir():
            present = [n for n in PERMISSIVE if (path / LICENCES[n][0]).exists()]
            sources += [load_source(path, n) for n in present]
        else:
            from gearshift.routing.corpus import _canonical

            rows = [_canonical(r, path.stem) for r in read_labelled(path)]
            sources.append(Source(path.stem, "as given (labelled JSONL)", rows))
    return sources


def kinds_digest() -> str:
    from gearshift.routing.kinds import MODEL_FILE as KINDS_FILE

    return hashlib.sha256((Path(__file__).parent / "data" / KINDS_FILE).read_bytes()).hexdigest()


def encoder_provenance() -> dict[str, str]:
    import numpy as np

    from gearshift.routing.encoder import DEFAULT_PATH

    with np.load(DEFAULT_PATH, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    return {
        "file": DEFAULT_PATH.name,
        "sha256": hashlib.sha256(DEFAULT_PATH.read_bytes()).hexdigest(),
        "upstream": meta["upstream"],
        "licence": meta["licence"],
    }


def build(
    data: Sequence[str | Path], out: Path, *, seed: int = 0, log: Any = print
) -> dict[str, Any]:
    _threads_single()
    from gearshift.catalogue import lookup
    from gearshift.routing.features import extract
    from gearshift.routing.irt_train import (
        SOURCE_ROWS,
        IrtOptions,
        fit_quality_model,
        sample_rows,
        source_weights,
    )

    started = time.time()
    sources = _load(data)
    digest = hashlib.sha256()
    feats, scores, names, provenance = [], [], [], []
    for k, source in enumerate(sources):
        keep = sample_rows(len(source.rows), [r.category for r in source.rows], seed + k)
        for i in keep:
            row = source.rows[i]
            digest.update(json.dumps([row.id, row.scores], sort_keys=True).encode())
            digest.update(row.request.last_user_text().encode())
            feats.append(extract(row.request))
            scores.append(row.scores)
            names.append(source.name)
        provenance.append(
            {
                "source": source.name,
                "licence": source.licence,
                "rows_available": len(source.rows),
                "rows_trained": len(keep),
                "models": source.models,
            }
        )
        log(f"build_default: {source.name}: {len(keep)} of {len(source.rows)} rows")
    options = IrtOptions(seed=seed)
    trained = sorted({m for s in scores for m in s})
    abilities = {m: e.ability for m in trained if (e := lookup(m)) is not None}
    model = fit_quality_model(
        feats, scores, source_weights(names), abilities, options, log, sources=names
    )
    meta = {
        "kind": "quality (low-rank item response)",
        # the kind probabilities are inputs: a rebuilt kind model needs a rebuilt router
        "kinds_sha256": kinds_digest(),
        "sources": provenance,
        "rows": len(feats),
        "source_rows_cap": SOURCE_ROWS,
        "data_sha256": digest.hexdigest(),
        "profile_abilities": {m: abilities[m] for m in sorted(abilities)},
    }
    if model.has_heads:  # the heads read the bundled encoder's embeddings: name it and its terms
        meta["encoder"] = encoder_provenance()
    model.meta.update(meta)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    summary = {
        **meta,
        "options": model.meta["options"],
        "models": model.models,
        "vocab": len(model.vocab),
        "seconds": round(time.time() - started, 1),
    }
    (out / MODEL_FILE.replace(".npz", ".json")).write_text(
        json.dumps(summary, indent=2) + "\n", encoding="utf-8"
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the bundled default router.")
    p.add_argument("--data", nargs="+", required=True, help="../shared/data, or labelled JSONL")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    summary = build(
        args.data, args.out, seed=args.seed, log=lambda m: print(m, file=sys.stderr, flush=True)
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "sources"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
