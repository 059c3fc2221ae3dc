"""``python -m gateway``: serve GraphQL at http://GATEWAY_HOST:GATEWAY_PORT/graphql (see README, Configuration)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from .app import create_app
from .config import SettingsError, load_settings


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
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        ws_max_size=settings.max_body_bytes,  # uvicorn would buffer up to 16 MiB before the middleware refuses
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
