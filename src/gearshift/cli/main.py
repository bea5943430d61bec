"""``gearshift <command>``: a thin dispatcher. Each command lives in its own module, imported only
when that command runs, so ``gearshift route`` never pays for the server's imports."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

# command -> (module under gearshift.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "write an annotated gearshift.yaml for the providers in the environment"),
    "serve": ("serve", "run the gateway (OpenAI, Anthropic and Bedrock dialects)"),
    "route": ("route", "explain the routing decision for one prompt"),
    "score": ("score", "write predicted difficulty and per-model quality for a JSONL file"),
    "train": ("train", "learn a router from labelled JSONL (--from-ledger: from traffic labels)"),
    "eval": ("eval", "measure a router: APGR, CPT, cost-quality curve (--candidate: a candidate)"),
    "convert": ("convert", "convert ../shared/data style files to labelled JSONL"),
    "audit": ("audit", "what routing would have saved on an existing prompt log"),
    "report": ("report", "spend, savings and routing mix from the ledger"),
    "keys": ("keys", "create, list, revoke and rotate virtual keys"),
    "promote": ("promote", "make every gateway serve a candidate router, or roll back"),
    "learn": ("learn", "one turn of the learning loop: train, evaluate, maybe promote"),
    "reload": ("reload", "make a running gateway re-read its configuration (as SIGHUP does)"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: gearshift <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'gearshift <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        from gearshift import __version__

        print(f"gearshift {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"gearshift: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"gearshift.cli.{COMMANDS[name][0]}")
    run = module.run
    from gearshift.errors import GearshiftError

    try:
        code: int = run(args[1:])
    except GearshiftError as exc:
        print(f"gearshift {name}: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`gearshift report ... | head`): stop quietly, as Unix tools do;
        # stdout is pointed at /dev/null so the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
