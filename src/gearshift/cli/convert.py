"""``gearshift convert SRC... --out FILE``: public routing data to labelled JSONL.

Reads RouteLLM outcome CSVs (MMLU, GSM8K), RouterArena per-model result files, or a directory
holding them (such as ``../shared/data``) and writes the labelled format of DESIGN.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gearshift convert", description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", help="files or directories to convert")
    p.add_argument("--out", required=True, help="labelled JSONL to write ('-' for stdout)")
    return p


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    import json

    from gearshift.routing.convert import convert_path

    def rows() -> Iterator[dict[str, Any]]:
        for source in args.sources:
            yield from convert_path(source)

    n = 0
    models: set[str] = set()
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for row in rows():
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            models.update(row["scores"])
            n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"wrote {n} labelled rows ({len(models)} models) to {args.out}", file=sys.stderr)
    return 0
