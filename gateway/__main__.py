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


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine call is noise; use debug to see them
    where = settings.engine_url or "the embedded engine"
    print(
        f"gateway: GraphQL at http://{settings.host}:{settings.port}/graphql, engine: {where}",
        file=sys.stderr,
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        ws_max_size=settings.max_body_bytes,  # uvicorn would buffer up to 16 MiB before the middleware refuses
        timeout_graceful_shutdown=5,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises a captured Ctrl+C after its shutdown
        GatewayServer(config, app).run()
    return 0


class GatewayServer(uvicorn.Server):
    """uvicorn, ending live subscriptions first when it stops.

    uvicorn closes WebSockets (1012) and then waits for open responses before the app's lifespan ends, so an SSE
    stream would hold the shutdown until its timeout. Here every live subscription is ended with ``SHUTTING_DOWN``
    first: each one sends that as its last message and closes, then uvicorn shuts down as usual.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hub: ChangeHub | None = getattr(self._app.state, "hub", None)
        if hub is not None:
            held = hub.subscription_count
            hub.close()
            if held:
                await asyncio.sleep(0.2)  # let each subscription send its last message
        await super().shutdown(sockets)


if __name__ == "__main__":
    sys.exit(main())
