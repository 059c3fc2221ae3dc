"""``python -m gateway``: serve GraphQL at http://GATEWAY_HOST:GATEWAY_PORT/graphql (see README, Configuration)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .config import SettingsError, load_settings
from .core.hub import ChangeHub
from .core.service import TaskService
from .health import ReadinessProbe
from .logs import UVICORN_OPTIONS, configure_logging
from .slow_clients import guarded_protocol


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)  # JSON lines (or text), uvicorn's too; our access log replaces uvicorn's
    where = settings.engine_url or "the embedded engine"
    logging.getLogger("gateway").info(
        "GraphQL at http://%s:%d/graphql, engine: %s", settings.host, settings.port, where
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **UVICORN_OPTIONS,
        lifespan="on",
        ws_max_size=settings.max_body_bytes,  # uvicorn would buffer up to 16 MiB before the middleware refuses
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        http=guarded_protocol(settings.header_timeout_seconds),  # headers due in time (see gateway.slow_clients)
        limit_concurrency=settings.max_connections,  # connections and requests in flight; more: 503
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises a captured Ctrl+C after its shutdown
        GatewayServer(config, app).run()
    return 0


class GatewayServer(uvicorn.Server):
    """uvicorn, shutting down gracefully on SIGTERM (or Ctrl+C).

    In this order:

    1. ``/readyz`` answers 503 ``shuttingDown`` (a load balancer that still asks stops sending here);
    2. batches stop sending items: each item not yet sent to the engine is answered ``SHUTTING_DOWN`` (never
       sent, safe to retry elsewhere), the items already sent finish and the batch is answered;
    3. every live subscription ends with ``SHUTTING_DOWN`` as its last message (SSE streams end; GraphQL
       subscriptions send it as an error, then uvicorn closes their WebSockets with 1012, "service restart");
    4. uvicorn stops accepting connections and waits up to ``GATEWAY_SHUTDOWN_GRACE_SECONDS`` for the requests in
       flight to be answered (a request still running then is cancelled);
    5. the app's lifespan ends: the engine event stream, the engine client, the embedded engine.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = self._app.state
        readiness: ReadinessProbe | None = getattr(state, "readiness", None)
        if readiness is not None:
            readiness.shutting_down = True
        service: TaskService | None = getattr(state, "service", None)
        if service is not None:
            service.drain()
        hub: ChangeHub | None = getattr(state, "hub", None)
        if hub is not None:
            held = hub.subscription_count
            hub.close()
            if held:
                await asyncio.sleep(0.2)  # let each subscription send its last message
        await super().shutdown(sockets)


if __name__ == "__main__":
    sys.exit(main())
