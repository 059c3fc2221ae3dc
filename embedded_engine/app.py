"""The embedded engine's HTTP face: the ProcessCube engine API under ``/atlas_engine/api/v1``.

Thin by design: each route authenticates, parses and validates its input, calls :class:`EngineCore`, and renders
JSON. Every error leaves in the engine's serialized error shape (see errors.py), with the status equal to its
``code``; nothing a client sends can produce a stack trace.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from . import __name__ as package_name
from .authority import AuthError, Authority, ClientRecord
from .core import FLOW_NODE_STATES, PROCESS_STATES, EngineCore
from .errors import EXCEPTION_HANDLERS, EngineHttpError
from .event_routes import event_routes
from .events import EventBus, create_socketio_server, long_polling_routes
from .external_tasks import external_task_routes
from .identity import Identity, IdentityResolver
from .store import (
    FLOW_NODE_FILTER_COLUMNS,
    FLOW_NODE_SORT_COLUMNS,
    PROCESS_INSTANCE_FILTER_COLUMNS,
    PROCESS_INSTANCE_RANGE_FILTERS,
    PROCESS_INSTANCE_SORT_COLUMNS,
    FlowNodeQuery,
    Store,
)

API_PREFIX = "/atlas_engine/api/v1"
_PATH_PLACEHOLDER = ":process_model_id"
ENGINE_VERSION = "17.0.0-embedded"
ENGINE_ID_META_KEY = "engine_id"


@dataclass(frozen=True)
class EngineSettings:
    data_dir: Path
    public_url: str
    allow_anonymous: bool = True
    clients: tuple[ClientRecord, ...] = ()
    max_body_bytes: int = 5 * 1024 * 1024
    long_polling_max_wait: float = 55.0
    token_ttl_seconds: int = 3600

    @property
    def authority_url(self) -> str:
        return self.public_url.rstrip("/") + "/authority"


class EngineApp:
    """Owns the engine's parts for one process: store, core, authority, event bus."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.data_dir / "engine.sqlite3")
        self.bus = EventBus()
        self.core = EngineCore(self.store, self.bus)
        self.authority = Authority(
            settings.authority_url,
            settings.clients,
            settings.data_dir / "authority-key.pem",
            token_ttl_seconds=settings.token_ttl_seconds,
        )
        self.resolver = IdentityResolver(self.authority, allow_anonymous=settings.allow_anonymous)

    # -- helpers ---------------------------------------------------------------------------------------------

    def identity(self, request: Request) -> Identity:
        try:
            return self.resolver.resolve(request.headers.get("authorization"))
        except AuthError as exc:
            raise EngineHttpError(401, str(exc)) from exc

    async def read_json(self, request: Request, *, required: bool = True) -> Any:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise EngineHttpError(413, f"The request body is larger than the limit of {limit} bytes.")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise EngineHttpError(413, f"The request body is larger than the limit of {limit} bytes.")
        if not body.strip():
            if required:
                raise EngineHttpError(400, "The request needs a JSON body.")
            return None
        try:
            return json.loads(bytes(body).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise EngineHttpError(400, "The request body is not UTF-8 encoded JSON.") from exc
        except json.JSONDecodeError as exc:
            raise EngineHttpError(
                400, f"The request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc

    # -- routes ----------------------------------------------------------------------------------------------

    async def info(self, request: Request) -> Response:
        # The official Python client's ApplicationInfo requires ``id`` (the SDK's type has it as optional): one
        # id per engine installation, made on the first request and kept in the store, so a restart keeps it.
        engine_id = self.core.store_meta(ENGINE_ID_META_KEY)
        if engine_id is None:
            engine_id = str(uuid.uuid4())
            self.core.set_store_meta(ENGINE_ID_META_KEY, engine_id)
            await self.store.durable()
        return JSONResponse(
            {
                "id": engine_id,
                "name": "ProcessCube Engine (embedded)",
                "packageName": package_name,
                "version": ENGINE_VERSION,
                "authorityUrl": self.settings.authority_url,
                "allowAnonymousRootAccess": self.settings.allow_anonymous,
                "loadedExtensions": [],
                "extraInfo": {"embedded": True},
            }
        )

    async def authority_url(self, request: Request) -> Response:
        return JSONResponse(self.settings.authority_url)

    async def deploy(self, request: Request) -> Response:
        identity = self.identity(request)
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise EngineHttpError(400, 'The body must be an object: {"xml": "<bpmn:definitions…>"}.')
        xml = body.get("xml")
        xmls = [xml] if isinstance(xml, str) else xml
        if not isinstance(xmls, list) or not xmls or not all(isinstance(item, str) for item in xmls):
            raise EngineHttpError(400, "'xml' must be a BPMN XML string or a non-empty list of them.")
        overwrite = body.get("overwriteExisting", body.get("overrideExisting", False))
        if not isinstance(overwrite, bool):
            raise EngineHttpError(400, "'overwriteExisting' must be a boolean.")
        await self.core.deploy(xmls, overwrite=overwrite, identity=identity)
        return Response(status_code=201)

    async def list_definitions(self, request: Request) -> Response:
        self.identity(request)
        offset, limit = _paging(request)
        definitions = self.core.process_definitions()
        page = definitions[offset : offset + limit] if limit else definitions[offset:]
        return JSONResponse({"processDefinitions": page, "totalCount": len(definitions)})

    async def get_definition(self, request: Request) -> Response:
        self.identity(request)
        return JSONResponse(self.core.process_definition(request.path_params["definition_id"]))

    async def delete_definition(self, request: Request) -> Response:
        identity = self.identity(request)
        await self.core.delete_definition(
            request.path_params["definition_id"],
            delete_related=_boolean(request, "delete_all_related_data", default=False),
            identity=identity,
        )
        return Response(status_code=204)

    async def delete_model(self, request: Request) -> Response:
        identity = self.identity(request)
        await self.core.delete_model(
            request.path_params["process_model_id"],
            delete_related=_boolean(request, "delete_all_related_data", default=False),
            identity=identity,
        )
        return Response(status_code=204)

    async def definition_of_model(self, request: Request) -> Response:
        self.identity(request)
        return JSONResponse(self.core.definition_of_model(request.path_params["process_model_id"]))

    async def model_of_instance(self, request: Request) -> Response:
        self.identity(request)
        return JSONResponse(self.core.model_of_instance(request.path_params["process_instance_id"]))

    async def definition_of_instance(self, request: Request) -> Response:
        self.identity(request)
        return JSONResponse(self.core.definition_of_instance(request.path_params["process_instance_id"]))

    async def list_models(self, request: Request) -> Response:
        self.identity(request)
        offset, limit = _paging(request)
        models = self.core.process_models()
        page = models[offset : offset + limit] if limit else models[offset:]
        return JSONResponse({"processModels": page, "totalCount": len(models)})

    async def get_model(self, request: Request) -> Response:
        self.identity(request)
        return JSONResponse(self.core.process_model(request.path_params["process_model_id"]))

    async def start(self, request: Request) -> Response:
        identity = self.identity(request)
        process_model_id = request.path_params["process_model_id"]
        body = await self.read_json(request, required=False)
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise EngineHttpError(400, "The body must be a JSON object (ProcessStartRequest).")
        if process_model_id == _PATH_PLACEHOLDER:
            # The official TypeScript client's startProcessInstanceAndAwaitEndEvent (and the CLI's --wait) post to
            # the literal path /process_models/:process_model_id/start, the id in the body; the real engine takes it.
            process_model_id = body.get("processModelId")
            if not isinstance(process_model_id, str) or not process_model_id:
                raise EngineHttpError(400, "'processModelId' is missing from the body (the path names none).")
        if "processModelId" in body and body["processModelId"] != process_model_id:
            raise EngineHttpError(400, "'processModelId' in the body differs from the one in the path.")
        return_on = body.get("returnOn", 1)
        if return_on not in (1, 2, 3) or isinstance(return_on, bool):
            raise EngineHttpError(400, "'returnOn' must be 1 (created), 2 (finished) or 3 (end event reached).")
        for key in ("startEventId", "correlationId", "endEventId"):
            if key in body and body[key] is not None and not isinstance(body[key], str):
                raise EngineHttpError(400, f"'{key}' must be a string.")
        initial_token = body.get("initialToken", {})
        answer = await self.core.start(
            process_model_id,
            identity=identity,
            initial_token={} if initial_token is None else initial_token,
            start_event_id=body.get("startEventId"),
            correlation_id=body.get("correlationId"),
            return_on=int(return_on),
            end_event_id=body.get("endEventId"),
        )
        return JSONResponse(answer)

    async def query_instances(self, request: Request) -> Response:
        self.identity(request)
        _check_parameters(
            request,
            known=(*PROCESS_INSTANCE_FILTER_COLUMNS, *PROCESS_INSTANCE_RANGE_FILTERS, *_INSTANCE_QUERY_OPTIONS),
            unsupported=_UNSUPPORTED_INSTANCE_PARAMETERS,
        )
        filters = _filters(request, PROCESS_INSTANCE_FILTER_COLUMNS)
        for state in filters.get("state", ()):
            if state not in PROCESS_STATES:
                raise EngineHttpError(400, f"Unknown state '{state}'; one of: {', '.join(PROCESS_STATES)}.")
        ranges = {
            name: _timestamp(request, name) for name in PROCESS_INSTANCE_RANGE_FILTERS if request.query_params.get(name)
        }
        offset, limit = _paging(request)
        sort_column, descending = _sort_settings(request, PROCESS_INSTANCE_SORT_COLUMNS)
        _boolean(request, "includeCount", default=True)  # validated; the count is always there
        include_xml = _boolean(request, "includeXml", default=False)
        items, total = self.core.query_instances(
            filters, offset, limit, ranges=ranges, sort_column=sort_column, sort_descending=descending
        )
        if include_xml:
            for item in items:
                item["xml"] = self.store.definition_xml(item["hash"])
        return JSONResponse({"processInstances": items, "totalCount": total})

    async def terminate(self, request: Request) -> Response:
        identity = self.identity(request)
        await self.core.terminate(request.path_params["process_instance_id"], identity)
        return Response(status_code=204)

    async def flow_node_instances(self, request: Request) -> Response:
        identity = self.identity(request)
        _check_parameters(
            request,
            known=(*FLOW_NODE_FILTER_COLUMNS, *_FLOW_NODE_QUERY_OPTIONS),
            unsupported=_UNSUPPORTED_FLOW_NODE_PARAMETERS,
        )
        filters = _filters(request, FLOW_NODE_FILTER_COLUMNS)
        for state in filters.get("state", ()):
            if state not in FLOW_NODE_STATES:
                raise EngineHttpError(400, f"Unknown state '{state}'; one of: {', '.join(FLOW_NODE_STATES)}.")
        offset, limit = _paging(request)
        sort_column, descending = _sort_settings(request, FLOW_NODE_SORT_COLUMNS)
        include_count = _boolean(request, "includeCount", default=True)
        items, total = self.core.query_flow_nodes(
            FlowNodeQuery(
                filters=filters,
                offset=offset,
                limit=limit,
                sort_column=sort_column,
                sort_descending=descending,
                include_count=include_count,
            ),
            identity,
        )
        return JSONResponse({"flowNodeInstances": items, "totalCount": total if total is not None else len(items)})

    async def reserve(self, request: Request) -> Response:
        identity = self.identity(request)
        body = await self.read_json(request)
        owner = body.get("actualOwnerId") if isinstance(body, dict) else None
        if not isinstance(owner, str) or not owner:
            raise EngineHttpError(400, 'The body must be {"actualOwnerId": "<user id>"} with a non-empty id.')
        await self.core.reserve(request.path_params["task_id"], owner, identity)
        return Response(status_code=204)

    async def cancel_reservation(self, request: Request) -> Response:
        identity = self.identity(request)
        await self.core.cancel_reservation(request.path_params["task_id"], identity)
        return Response(status_code=204)

    async def finish(self, request: Request) -> Response:
        identity = self.identity(request)
        body = await self.read_json(request, required=False)
        result = {} if body is None else body
        if not isinstance(result, dict):
            raise EngineHttpError(
                400, f"The result must be a JSON object {{formFieldId: value}}, not {type(result).__name__}."
            )
        await self.core.finish(request.path_params["task_id"], result, identity)
        return Response(status_code=204)

    def routes(self) -> list[BaseRoute]:
        api: list[BaseRoute] = [
            Route("/info", self.info, methods=["GET"]),
            Route("/authority", self.authority_url, methods=["GET"]),
            Route("/process_definitions", self.deploy, methods=["POST"]),
            Route("/process_definitions", self.list_definitions, methods=["GET"]),
            Route("/process_definitions/{definition_id}", self.get_definition, methods=["GET"]),
            Route("/process_definitions/{definition_id}", self.delete_definition, methods=["DELETE"]),
            Route("/process_models", self.list_models, methods=["GET"]),
            Route("/process_models/{process_model_id}", self.get_model, methods=["GET"]),
            Route("/process_models/{process_model_id}/", self.get_model, methods=["GET"]),
            Route("/process_models/{process_model_id}", self.delete_model, methods=["DELETE"]),
            Route("/process_models/{process_model_id}/process_definition", self.definition_of_model, methods=["GET"]),
            Route("/process_models/{process_model_id}/start", self.start, methods=["POST"]),
            Route("/process_instances/query", self.query_instances, methods=["GET"]),
            Route("/process_instances/{process_instance_id}/terminate", self.terminate, methods=["PUT"]),
            Route("/process_instances/{process_instance_id}/process_model", self.model_of_instance, methods=["GET"]),
            Route(
                "/process_instances/{process_instance_id}/process_definition",
                self.definition_of_instance,
                methods=["GET"],
            ),
            Route("/flow_node_instances", self.flow_node_instances, methods=["GET"]),
            Route("/user_tasks/{task_id}/reserve", self.reserve, methods=["PUT"]),
            Route("/user_tasks/{task_id}/cancel-reservation", self.cancel_reservation, methods=["DELETE"]),
            Route("/user_tasks/{task_id}/finish", self.finish, methods=["PUT"]),
            *event_routes(self),
            *long_polling_routes(self.bus, self.resolver, max_wait_seconds=self.settings.long_polling_max_wait),
            *external_task_routes(self),
        ]
        return [
            Mount(API_PREFIX, routes=api),
            Mount("/authority", routes=self.authority.routes()),
        ]

    def close(self) -> None:
        self.core.external_tasks.close()
        self.store.close()


def create_app(
    settings: EngineSettings, *, on_startup: Callable[[EngineApp], Awaitable[None]] | None = None
) -> ASGIApp:
    """The whole engine as one ASGI app: the HTTP API, the authority, and Socket.IO at ``/socket.io``."""
    engine = EngineApp(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup(engine)
        engine.core.external_tasks.start()  # re-arm the expiry of the external task locks in the store
        engine.core.resume_timers()
        try:
            yield
        finally:
            await engine.core.close()
            engine.close()

    starlette_app = Starlette(
        routes=engine.routes(),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    starlette_app.state.engine = engine
    sio = create_socketio_server(engine.bus, engine.resolver)
    app: ASGIApp = socketio.ASGIApp(sio, other_asgi_app=starlette_app, socketio_path="socket.io")
    return app


# Query parameters of the paged routes besides their filters. The official clients send these: the TypeScript
# client includeCount always (and includeXml on process instances), sortSettings, offset and limit when set; the
# Python client offset=0&limit=-1 by default on process instances.
_FLOW_NODE_QUERY_OPTIONS = ("offset", "limit", "includeCount", "sortSettings")
_INSTANCE_QUERY_OPTIONS = ("offset", "limit", "includeCount", "includeXml", "sortSettings")
# Parameters the real engine knows (its OpenAPI document, the SDK's query types) that this engine cannot honour:
# a 400 that says so, never an answer that ignores them.
_UNSUPPORTED_FLOW_NODE_PARAMETERS = ("triggeredByFlowNodeInstance", "embeddedProcessModelId")
_UNSUPPORTED_INSTANCE_PARAMETERS = (
    "parentProcessInstanceId",
    "embeddedProcessModelId",
    "processModelVersion",
    "anonymousSessionId",
    "startedByRootAccessToken",
    "updatedAt",
    "updatedBefore",
    "updatedAfter",
    "durationInMillisecondsGreaterThan",
    "durationInMillisecondsLessThan",
    "startToken",
    "startEventType",
    "endToken",
    "endEventType",
    "correlationMetadata",
    "processInstanceMetadata",
    "triggeredByFlowNodeInstance",
)


def _check_parameters(request: Request, *, known: Iterable[str], unsupported: Iterable[str]) -> None:
    """400 for a query parameter the route does not know, naming it; the real engine's own but unsupported ones
    are named as such. Silently dropping one would answer a narrower question with everything."""
    allowed = set(known)
    not_supported = set(unsupported)
    for name in request.query_params:
        if name in allowed:
            continue
        if name in not_supported:
            raise EngineHttpError(400, f"The query parameter '{name}' is not supported by this engine.")
        raise EngineHttpError(
            400, f"Unknown query parameter '{name}'; known: {', '.join(sorted(allowed | not_supported))}."
        )


def _csv(request: Request, name: str) -> list[str]:
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        if raw.startswith("{"):
            # the official TypeScript client sends a SearchQuery ({"operator", "searchParams"}) as JSON
            raise EngineHttpError(400, f"'{name}': search queries (JSON objects) are not supported by this engine.")
        values.extend(part for part in raw.split(",") if part != "")
    return values


def _filters(request: Request, columns: Iterable[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for name in columns:
        values = _csv(request, name)
        if values:
            filters[name] = values
    return filters


def _integer(request: Request, name: str, *, allow_unlimited: bool = False) -> int:
    """A non-negative integer parameter, 0 when absent; with ``allow_unlimited``, -1 ("no limit") reads as 0."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return 0
    try:
        value = float(raw)
    except ValueError:
        raise EngineHttpError(400, f"'{name}' must be a non-negative integer, not '{raw}'.") from None
    if allow_unlimited and value == -1:
        return 0
    if value < 0 or value != int(value) or value > 2**31:
        raise EngineHttpError(400, f"'{name}' must be a non-negative integer, not '{raw}'.")
    return int(value)


def _paging(request: Request) -> tuple[int, int]:
    """``(offset, limit)``; a limit of 0, -1 (the official Python client's default) or none means no limit."""
    return _integer(request, "offset"), _integer(request, "limit", allow_unlimited=True)


def _boolean(request: Request, name: str, *, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise EngineHttpError(400, f"'{name}' must be true or false, not '{raw}'.")


def _timestamp(request: Request, name: str) -> str:
    """An ISO 8601 timestamp parameter, as the engine stores them (UTC, milliseconds, ``Z``)."""
    raw = request.query_params.get(name, "")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise EngineHttpError(400, f"'{name}' must be an ISO 8601 timestamp, not '{raw}'.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sort_settings(request: Request, columns: Mapping[str, str]) -> tuple[str | None, bool]:
    raw = request.query_params.get("sortSettings")
    if raw is None or raw == "":
        return None, False
    try:
        settings = json.loads(raw)
    except json.JSONDecodeError:
        raise EngineHttpError(
            400, '\'sortSettings\' must be JSON like {"sortBy":"createdAt","sortDir":"DESC"}.'
        ) from None
    if not isinstance(settings, dict):
        raise EngineHttpError(400, "'sortSettings' must be a JSON object with 'sortBy' and 'sortDir'.")
    sort_by = settings.get("sortBy")
    column = columns.get(sort_by) if isinstance(sort_by, str) else None
    if column is None:
        raise EngineHttpError(400, f"Cannot sort by {sort_by!r}; one of: {', '.join(sorted(columns))}.")
    direction = str(settings.get("sortDir", "ASC")).upper()
    if direction not in ("ASC", "DESC"):
        raise EngineHttpError(400, f"'sortDir' must be ASC or DESC, not {settings.get('sortDir')!r}.")
    return column, direction == "DESC"
