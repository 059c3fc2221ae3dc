"""``python -m embedded_engine``: run the embedded ProcessCube engine.

python -m embedded_engine --host 127.0.0.1 --port 56100 --data-dir .data/engine [--demo]
                          [--no-anonymous] [--clients clients.json] [--public-url URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import uvicorn

from .app import EngineApp, EngineSettings, create_app
from .authority import DEFAULT_CLIENTS, load_clients
from .demo import seed_demo_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m embedded_engine",
        description="A ProcessCube-compatible BPMN engine (SpiffWorkflow + SQLite + an OAuth authority).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=56100, help="port to listen on (default 56100)")
    parser.add_argument("--data-dir", type=Path, default=Path(".data/engine"), help="where the SQLite file lives")
    parser.add_argument("--public-url", help="the URL clients use to reach this engine (default http://HOST:PORT)")
    parser.add_argument("--no-anonymous", action="store_true", help="refuse the anonymous dummy token (401)")
    parser.add_argument("--clients", type=Path, help="JSON list of OAuth clients (default: the development clients)")
    parser.add_argument("--demo", action="store_true", help="deploy examples/processes and start demo instances")
    parser.add_argument("--max-body-bytes", type=int, default=5 * 1024 * 1024, help="request body limit")
    parser.add_argument("--long-polling-wait", type=float, default=55.0, help="seconds a long poll waits (then 204)")
    parser.add_argument("--token-ttl", type=int, default=3600, help="lifetime of issued access tokens in seconds")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the process that started this one goes away"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        clients = load_clients(args.clients) if args.clients else DEFAULT_CLIENTS
    except (OSError, ValueError) as exc:
        print(f"embedded_engine: {exc}", file=sys.stderr)
        return 2
    settings = EngineSettings(
        data_dir=args.data_dir,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        allow_anonymous=not args.no_anonymous,
        clients=tuple(clients),
        max_body_bytes=args.max_body_bytes,
        long_polling_max_wait=args.long_polling_wait,
        token_ttl_seconds=args.token_ttl,
    )

    async def on_startup(engine: EngineApp) -> None:
        if args.demo:
            await seed_demo_data(engine.core)

    if args.exit_with_parent:
        _exit_with_parent()
    app = create_app(settings, on_startup=on_startup)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on")
    return 0


def _exit_with_parent() -> None:
    """A gateway that starts this engine may be killed without a chance to stop it: then stop too (SIGTERM)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
