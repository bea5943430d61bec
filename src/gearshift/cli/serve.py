"""``gearshift serve [--config FILE] [--host 127.0.0.1] [--port 8080] [--workers N]``.

Without ``--config`` it serves default routers for the providers whose credentials are in the
environment (``gearshift.quickstart``), with a SQLite ledger in the working directory.

Runs the gateway under uvicorn (uvloop + httptools). Configuration problems, a missing upstream
API key among them, stop it before it binds a port, with a message naming what to fix. SIGTERM
stops accepting connections, lets in-flight requests finish (``server.shutdown_grace_s``) and
flushes the ledger. SIGHUP (``gearshift reload``) re-reads the configuration file and swaps it in
(api/live_config.py); with several workers the supervisor validates the file, then passes the
signal to every worker.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gearshift.config import Settings

CONFIG_ENV = "GEARSHIFT_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearshift serve",
        description="Run the gateway: OpenAI, Anthropic and Bedrock APIs with per-prompt routing.",
    )
    parser.add_argument(
        "--config",
        help="YAML configuration file (default: routers for the providers found in the "
        "environment, e.g. openai-auto when OPENAI_API_KEY is set)",
    )
    parser.add_argument(
        "--host", default=None, help="address to bind (default: server.host, 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: server.port, 8080)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: server.workers, 1)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request (off by default: the ledger records every request)",
    )
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from gearshift.api.pipeline import Gateway
    from gearshift.config import load_settings

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.config is not None:
        settings = load_settings(args.config)
    else:
        settings = _settings_from_environment()
    # Fail here, before binding, with the model and variable named (lifespan would say it too,
    # but buried in a server log).
    Gateway(settings).check_environment()
    server = settings.server
    host = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = args.workers or server.workers
    from gearshift.errors import ConfigError

    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    from gearshift.policy import limited_keys_problem, shared_counters_problem

    # Before any worker starts: each would fail the same way (and --workers may say more
    # workers than the file's server.workers, which the workers themselves cannot see).
    problem = shared_counters_problem(settings, workers) or limited_keys_problem(settings, workers)
    if problem is not None:
        raise ConfigError(problem)
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": args.access_log,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": server.shutdown_grace_s,
        "server_header": False,
        "log_config": log_config(),
    }
    # Without a file (settings from the environment) there is nothing to re-read: no reload.
    config_path = os.path.abspath(args.config) if args.config is not None else None
    pid_file = None
    if config_path is not None:
        from gearshift.api.live_config import SERVE_FLAGS_ENV, runtime_path

        # a reload compares the file's server: block with what runs: these flags win over it
        given = {"host": args.host, "port": args.port, "workers": args.workers or None}
        flags = {name: value for name, value in given.items() if value is not None}
        os.environ[SERVE_FLAGS_ENV] = json.dumps(flags)

        pid_file = runtime_path(config_path, ".pid")
        pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        if workers == 1:
            from gearshift.api.app import create_app

            uvicorn.run(create_app(settings, config_path=config_path), **options)
            return 0
        # Several processes: each builds its own app from the same file, or the same
        # environment (uvicorn needs a factory); our supervisor turns SIGHUP into a validated
        # reload of every worker.
        if config_path is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = config_path
        with shared_metrics_dir():
            _run_workers(config_path, workers, options)
        return 0
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


def _run_workers(config_path: str | None, workers: int, options: dict[str, Any]) -> None:
    """``uvicorn.run(..., workers=N)``, with a supervisor that reloads instead of restarting."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Multiprocess

    class ReloadingSupervisor(Multiprocess):
        def handle_hup(self) -> None:
            if config_path is None:
                logging.getLogger("gearshift.reload").warning(
                    "SIGHUP ignored: started without --config, there is no file to re-read"
                )
                return
            forward_reload(config_path, [p.pid for p in self.processes if p.pid is not None])

    config = uvicorn.Config(
        "gearshift.cli.serve:app_from_env", factory=True, workers=workers, **options
    )
    sock = config.bind_socket()
    supervisor = ReloadingSupervisor(config, sockets=[sock])
    supervisor.run()
    # uvicorn restarts a worker that dies while serving, but stops everything when one fails
    # before serving (exit status STARTUP_FAILURE): it would fail the same way each time.
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        from gearshift.errors import ConfigError

        raise ConfigError("a worker could not start (its error is above); the gateway stopped")


def forward_reload(config_path: str, worker_pids: list[int]) -> None:
    """The supervisor's SIGHUP: validate the file once, then signal every worker to reload it
    (each swaps its own gateway and writes its verdict). A bad file goes no further."""
    import signal
    import time

    from gearshift.api.live_config import runtime_path, validate_file, write_verdict
    from gearshift.errors import GearshiftError

    verdict: dict[str, Any] = {"pid": os.getpid(), "at": time.time(), "config": config_path}
    log = logging.getLogger("gearshift.reload")
    try:
        validate_file(config_path)
    except GearshiftError as exc:
        verdict.update(ok=False, error=exc.message)
        log.error("reload refused, the running configuration stays: %s", exc.message)
    else:
        for pid in worker_pids:
            os.kill(pid, signal.SIGHUP)
        verdict.update(ok=True, workers=worker_pids)
        log.info("reload: configuration valid, passed to %d workers", len(worker_pids))
    write_verdict(runtime_path(config_path, ".reload.json"), verdict)


# A secret someone put in a URL anyway (gearshift reads keys from headers only).
_SECRET_PARAM = re.compile(r"((?:admin_key|api_key|key)=)[^&\s]*", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Access-log filter: masks ``admin_key=`` (and ``api_key=``, ``key=``) values in logged
    paths, so a key sent in a URL by mistake does not land in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "key=" in a.lower() for a in record.args
        ):
            record.args = tuple(
                _SECRET_PARAM.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus ``RedactSecrets`` on the access log (given by
    import path, so every worker process builds its own)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": f"{__name__}.RedactSecrets"}
    config["handlers"]["access"].setdefault("filters", []).append("redact_secrets")
    return config


def _settings_from_environment() -> Settings:
    from gearshift.quickstart import default_settings, startup_lines

    settings, found = default_settings()
    log = logging.getLogger("gearshift.serve")
    for line in startup_lines(settings, found):
        log.info("%s", line)
    if os.path.exists("gearshift.yaml"):
        log.info("./gearshift.yaml exists but is not read: pass --config gearshift.yaml to use it")
    return settings


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """Where the workers' metric files go (analytics/metrics_shared.py): the operator's
    ``PROMETHEUS_MULTIPROC_DIR``, emptied of a previous run's files as prometheus_client asks,
    or a private temporary folder removed afterwards. Set before the workers start, so each
    inherits it."""
    from gearshift.analytics.metrics_shared import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="gearshift-metrics-") as folder:
        os.environ[MULTIPROC_ENV] = folder
        try:
            yield folder
        finally:
            del os.environ[MULTIPROC_ENV]


def app_from_env() -> Any:
    """The app for one worker process, from the file named in ``GEARSHIFT_CONFIG`` (or, without
    one, from the providers in the environment).

    A worker that cannot build its app exits with uvicorn's STARTUP_FAILURE status, which makes
    the supervisor stop instead of restarting it over and over: a configuration error as one
    line, anything else (a bug) with its traceback."""
    import sys

    from uvicorn.config import STARTUP_FAILURE

    from gearshift.api.app import create_app
    from gearshift.config import load_settings
    from gearshift.errors import GearshiftError

    path = os.environ.get(CONFIG_ENV)
    try:
        if path is None:
            from gearshift.quickstart import default_settings

            return create_app(default_settings()[0])
        return create_app(load_settings(path), config_path=path)
    except GearshiftError as exc:
        print(f"gearshift serve: error: {exc.message}", file=sys.stderr, flush=True)
    except Exception:
        logging.getLogger("gearshift.serve").exception("a worker could not build the gateway")
    sys.exit(STARTUP_FAILURE)
