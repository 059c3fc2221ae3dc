"""The REST face of the gateway (starlette routes over the same TaskService as GraphQL)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ..config import Settings


def rest_routes(settings: Settings) -> list[BaseRoute]:
    """Routes under /api/v1 plus /openapi.json, /openapi.yaml and /docs (filled in by the REST issue)."""
    return []
