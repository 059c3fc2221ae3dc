"""Run any ASGI app with uvicorn on a free loopback port, inside the test's own event loop.

Serving from the test's loop (not a thread) lets a test call synchronous, loop-bound code of the app (an
event bus, a store) directly while real HTTP clients talk to it. The socket is bound before uvicorn starts, so
there is no race for the port; the server always shuts down when the ``async with`` block ends, even on
failure.

    async with serve(app) as base_url:
        response = await client.get(f"{base_url}/path")
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Generator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["serve", "serve_with_url"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Leave the test runner's signal handlers (Ctrl-C) alone.
        yield


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on a free port of ``host`` for the duration of the block; yields ``http://host:port``."""
    async with serve_with_url(lambda _base_url: app, host=host) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def serve_with_url(build: Callable[[str], ASGIApp], *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Like :func:`serve`, for apps that must know their own URL (an OAuth issuer): ``build(base_url)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        base_url = f"http://{host}:{port}"
        config = uvicorn.Config(build(base_url), log_level="warning", lifespan="auto", timeout_graceful_shutdown=5)
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise its error
                    raise RuntimeError("the server stopped during startup")
                await asyncio.sleep(0.01)
            yield base_url
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()
