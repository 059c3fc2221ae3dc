"""Serve an in-process ASGI app over real HTTP: uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from tests.servers import free_port


@contextmanager
def serve_asgi(app: ASGIApp, *, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on ``127.0.0.1:<free port>`` and yield its origin (``http://127.0.0.1:PORT``).

    The server is always shut down (and its thread joined) when the block exits.
    """
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        for _attempt in range(int(startup_timeout / 0.02)):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.02)
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on port {port}: {failure or 'timed out'}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
