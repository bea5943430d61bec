"""``gearshift serve --config FILE [--host 127.0.0.1] [--port 8080] [--workers N]``.

Runs the gateway under uvicorn (uvloop + httptools). Configuration problems, a missing upstream
API key among them, stop it before it binds a port, with a message naming what to fix. SIGTERM
stops accepting connections, lets in-flight requests finish (``server.shutdown_grace_s``) and
flushes the ledger. SIGHUP (``gearshift reload``) re-reads the configuration file and swaps it in
(api/live_config.py); with several workers the supervisor validates the file, then passes the
signal to every worker.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

CONFIG_ENV = "GEARSHIFT_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearshift serve",
        description="Run the gateway: OpenAI, Anthropic and Bedrock APIs with per-prompt routing.",
    )
    parser.add_argument("--config", required=True, help="YAML configuration file")
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

    settings = load_settings(args.config)
    # Fail here, before binding, with the model and variable named (lifespan would say it too,
    # but buried in a server log).
    Gateway(settings).check_environment()
    server = settings.server
    host = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = args.workers or server.workers
    if workers < 1:
        from gearshift.errors import ConfigError

        raise ConfigError("--workers must be at least 1")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
    }
    config_path = os.path.abspath(args.config)
    from gearshift.api.live_config import runtime_path

    pid_file = runtime_path(config_path, ".pid")
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        if workers == 1:
            from gearshift.api.app import create_app

            uvicorn.run(create_app(settings, config_path=config_path), **options)
            return 0
        # Several processes: each builds its own app from the same file (uvicorn needs a
        # factory); our supervisor turns SIGHUP into a validated reload of every worker.
        os.environ[CONFIG_ENV] = config_path
        _run_workers(config_path, workers, options)
        return 0
    finally:
        pid_file.unlink(missing_ok=True)


def _run_workers(config_path: str, workers: int, options: dict[str, Any]) -> None:
    """``uvicorn.run(..., workers=N)``, with a supervisor that reloads instead of restarting."""
    import uvicorn
    from uvicorn.supervisors.multiprocess import Multiprocess

    class ReloadingSupervisor(Multiprocess):
        def handle_hup(self) -> None:
            forward_reload(config_path, [p.pid for p in self.processes if p.pid is not None])

    config = uvicorn.Config(
        "gearshift.cli.serve:app_from_env", factory=True, workers=workers, **options
    )
    sock = config.bind_socket()
    ReloadingSupervisor(config, sockets=[sock]).run()


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


def app_from_env() -> Any:
    """The app for one worker process, from the file named in ``GEARSHIFT_CONFIG``."""
    from gearshift.api.app import create_app
    from gearshift.config import load_settings

    path = os.environ[CONFIG_ENV]
    return create_app(load_settings(path), config_path=path)
