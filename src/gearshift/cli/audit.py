"""``gearshift audit LOG... [--config FILE] [--router NAME] [--tolerance X] [--format FORMAT]``

What routing would have saved on a prompt log a team already has: no keys, no network.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gearshift.errors import InvalidRequest


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gearshift audit",
        description="What routing would have saved on an existing prompt log. Reads OpenAI-style "
        "JSONL, Bedrock invocation logs, CSV with a prompt column and gearshift's ledger "
        "(gzip too), detected per file.",
    )
    p.add_argument(
        "logs", nargs="+", metavar="LOG", help="log files, directories of them, or a ledger URL"
    )
    p.add_argument("--config", help="gearshift.yaml: audit against its router's models")
    p.add_argument("--router", help="router name in --config (default: the first)")
    p.add_argument("--tolerance", type=float, help="quality tolerance in [0, 1] to report at")
    p.add_argument("--model", help="the model the log was sent to, for lines that do not say")
    p.add_argument(
        "--tolerances",
        help="comma-separated tolerances for the trade-off curve "
        "(default 0,.02,.05,.1,.15,.2,.3,.5)",
    )
    p.add_argument("--format", choices=("text", "json", "html"), default="text")
    p.add_argument("--out", help="write the report here (required for --format html)")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a TTY")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes predicting in parallel (default: one per CPU core for logs over 32 MB, "
        "else 1: no extra process)",
    )
    p.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="replay N moved prompts on the logged and the routed model and have a judge grade "
        "both: measured quality retained beside the predicted one (calls real models; needs "
        "--config; the worst-case cost is printed first)",
    )
    p.add_argument(
        "--judge", help="judge model for --verify (default: the router's learning.judge)"
    )
    p.add_argument("--batch-size", type=int, default=4096, help=argparse.SUPPRESS)
    return p


def _tolerances(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InvalidRequest(
            f"--tolerances must be numbers separated by commas, got {text!r}"
        ) from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InvalidRequest("--tolerances must each be between 0 and 1")
    return values


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if args.tolerance is not None and not 0 <= args.tolerance <= 1:
        raise InvalidRequest(f"--tolerance must be between 0 and 1, got {args.tolerance}")
    if args.format == "html" and not args.out:
        raise InvalidRequest("--format html writes a file: give it with --out report.html")
    if args.verify and not args.config:
        raise InvalidRequest("--verify calls real models: give their configuration with --config")
    if args.verify < 0:
        raise InvalidRequest("--verify takes a number of prompts (0 or more)")
    if args.router and not args.config:
        raise InvalidRequest("--router names a router in --config FILE; give --config too")

    from gearshift.audit import AuditOptions, audit

    options = AuditOptions(
        config=args.config,
        router=args.router,
        tolerance=args.tolerance,
        model=args.model,
        batch_size=max(args.batch_size, 1),
        workers=max(args.workers, 0),
        progress=args.progress or sys.stderr.isatty(),
        verify=args.verify,
        judge=args.judge,
    )
    tolerances = _tolerances(args.tolerances)
    if tolerances is not None:
        options.tolerances = tolerances
    report = audit(list(args.logs), options)
    _write(report, args.format, args.out)
    if not report["requests"]:
        reasons = "; ".join(f"{n} {why}" for why, n in report["skipped_reasons"].items())
        print(
            f"gearshift audit: no usable requests in {', '.join(args.logs)} "
            f"({report['lines']} lines, {report['malformed']} malformed"
            + (f"; skipped: {reasons}" if reasons else "")
            + ")",
            file=sys.stderr,
        )
        return 1
    return 0


def _write(report: dict[str, object], fmt: str, out: str | None) -> None:
    if fmt == "json":
        import orjson

        data = orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"
        if out:
            with open(out, "wb") as f:
                f.write(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return
    if fmt == "html":
        from gearshift.audit.render_html import render_html

        assert out is not None
        with open(out, "w", encoding="utf-8") as f:
            f.write(render_html(report))
        print(f"gearshift audit: wrote {out}", file=sys.stderr)
        return
    from gearshift.audit.render_text import render_text

    if out:
        with open(out, "w", encoding="utf-8") as f:
            render_text(report, f)
    else:
        render_text(report, sys.stdout)
