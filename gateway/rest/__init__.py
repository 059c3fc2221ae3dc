"""The REST face of the gateway: starlette routes over the same TaskService as GraphQL.

- :mod:`.routes`: the operations under ``/api/v1`` (parse -> service -> render);
- :mod:`.resource`: what HTTP asks of every route (methods, media types, identity, idempotency keys), and the
  exception handlers that turn what routes raise into problems (:data:`EXCEPTION_HANDLERS`);
- :mod:`.params` and :mod:`.bodies`: query parameters and JSON bodies -> domain objects;
- :mod:`.render`: domain objects -> JSON; :mod:`.problems`: errors -> ``application/problem+json``;
- :mod:`.openapi`: the hand-written contract at ``/openapi.json`` and ``/openapi.yaml``, and ``/docs``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from .openapi import openapi_routes
from .resource import EXCEPTION_HANDLERS
from .routes import api_routes


def rest_routes() -> list[BaseRoute]:
    """Routes under /api/v1 plus /openapi.json, /openapi.yaml and /docs."""
    return [*api_routes(), *openapi_routes()]


__all__ = ["EXCEPTION_HANDLERS", "rest_routes"]
