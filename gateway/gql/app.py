"""The GraphQL endpoint: strawberry's ASGI app with the offline GraphiQL page and our per-request context.

GraphQL over HTTP, as the spec (and the ``graphql-http`` audit) has it:

- A client that accepts ``application/graphql-response+json`` gets that media type, and a request that fails
  before execution (it does not parse, fails validation, or its variables have the wrong type) answers 400
  without a ``data`` key. Clients that accept only ``application/json`` keep the classic 200.
- Transport errors strawberry answers in plain text (a body that is not JSON, a mutation over GET) come back as
  GraphQL errors with ``extensions.code``; a mutation over GET is 405 with ``Allow: POST``.
- A body that is JSON but not an object (``42``, ``null``, ``"x"``) and JSON nested deeper than
  ``MAX_REQUEST_JSON_DEPTH`` (body, GET ``variables``/``extensions``) are 400 ``BAD_REQUEST``, not 500s; the
  depth is checked before ``json.loads`` recurses. Over WebSocket, such a message closes the connection (4400).
- Documents and responses are remembered only while they are small (see :mod:`gateway.gql.limits`); only queries'
  responses are reused. A subscription over HTTP is 400 ``BAD_REQUEST``: subscriptions are served over WebSocket.

GraphQL over WebSocket (graphql-transport-ws, same path; see :mod:`gateway.gql.subscriptions`): the caller comes
from the upgrade request's ``Authorization`` header or from the ``connection_init`` payload
``{"Authorization": "Bearer <jwt>"}`` (browsers cannot set headers on a WebSocket); with a bad token every operation
on the connection answers UNAUTHENTICATED (see :meth:`GatewayGraphQL.on_ws_connect`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLFormattedError, OperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import NonJsonMessageReceived
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ErrorMessage, SubscribeMessage
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from ..core.domain import Caller
from ..core.errors import GatewayError, TooManySubscriptions, Unauthenticated
from ..record import OK, record_of
from .context import Context
from .cost import cost_limits
from .errors import request_error_code
from .graphiql import OfflineGraphQL
from .limits import MAX_REQUEST_JSON_DEPTH, DocumentCache, JSONTooDeep, decode_json
from .observe import operation_label
from .schema import GatewaySchema, build_schema

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions are served over WebSocket (graphql-transport-ws) at this path, not over HTTP: use a"
    " graphql-ws client, or GraphiQL."
)
NOT_AN_OBJECT = 'The request body must be a JSON object, such as {"query": "{ __typename }"}.'

#: A JSON body whose first character (after white space) is not one of these is not an object (nor a batch).
_OBJECT_OR_ARRAY_START = re.compile(rb"[ \t\r\n]*(?:[{\[]|$)")


def connection_authorization(params: Mapping[str, object] | None) -> object:
    """The ``Authorization`` (or ``authorization``) of a ``connection_init`` payload; None when there is none."""
    if not params:
        return None
    return params.get("Authorization", params.get("authorization"))


def wants_graphql_response(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == GRAPHQL_RESPONSE_JSON for part in accept.split(","))


def _response_key(query: str, variables: str, operation_name: str | None) -> bytes:
    """A fixed-size key for a request's document, variables and operation name (none of them is kept)."""
    digest = hashlib.sha256()
    for part in (query, variables, operation_name or ""):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.digest()


class _LimitedWebSocketAdapter(ASGIWebSocketAdapter):
    """strawberry's WebSocket adapter, closing with a reason when a message's JSON is nested too deeply.

    The view's :meth:`GatewayGraphQL.decode_json` refuses such a message before decoding it; strawberry would close
    with "WebSocket message must be valid JSON", which hides why. (Oversized messages never get here: the
    middleware closes the connection with 1009.)
    """

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        try:
            async for message in super().iter_json(ignore_parsing_errors=ignore_parsing_errors):
                yield message
        except NonJsonMessageReceived as exc:
            if not isinstance(exc.__cause__, JSONTooDeep):
                raise
            await self.close(4400, exc.__cause__.reason)


class _TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """strawberry's graphql-transport-ws handler, holding each connection to its live subscriptions' limit.

    A ``subscribe`` for a subscription beyond ``GATEWAY_SUBSCRIPTIONS_PER_CONNECTION`` (counted here, where a
    ``complete`` frees its slot at once) is refused with an ``error`` message whose code is
    TOO_MANY_SUBSCRIPTIONS. A document whose type is not known without parsing it (too long to remember) counts
    as a subscription while it runs. strawberry's own cap on operations in flight stays, above ours.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscription_limit = self.context.subscriptions_per_connection
        self.max_subscriptions_per_connection = max(self.max_subscriptions_per_connection or 0, self.subscription_limit)
        self._subscriptions: set[str] = set()

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        operation_id = message["id"]
        counted = (
            self.connection_acknowledged
            and operation_id not in self.operations
            and self._may_be_subscription(message["payload"])
        )
        if counted:
            self._subscriptions &= self.operations.keys()  # completed, ended and failed ones are gone from there
            if len(self._subscriptions) >= self.subscription_limit:
                error = TooManySubscriptions(
                    f"This connection already holds {len(self._subscriptions)} live subscriptions, the most one"
                    " connection may hold; complete one first (or open another connection)."
                )
                formatted: GraphQLFormattedError = {
                    "message": error.message,
                    "extensions": {"code": error.code, "requestId": self.context.request_id},
                }
                await self.send_message(ErrorMessage(id=operation_id, type="error", payload=[formatted]))
                return
        await super().handle_subscribe(message)
        if counted and operation_id in self.operations:
            self._subscriptions.add(operation_id)

    def _may_be_subscription(self, payload: object) -> bool:
        if not isinstance(payload, Mapping):
            return False  # strawberry refuses it
        query, operation_name = payload.get("query"), payload.get("operationName")
        if not isinstance(query, str) or not isinstance(operation_name, str | None):
            return False  # strawberry refuses it
        documents: DocumentCache = self.view.documents  # type: ignore[attr-defined]
        return documents.operation_type(query, operation_name) not in (OperationType.QUERY, OperationType.MUTATION)


class _SubResponse(Response):
    """strawberry's sub-response, remembering its request so that create_response can honour Accept."""

    request: Request | None = None


class GatewayGraphQL(OfflineGraphQL[Context, None]):
    websocket_adapter_class = _LimitedWebSocketAdapter  # type: ignore[assignment]
    graphql_transport_ws_handler_class = _TransportWSHandler

    def __init__(self, schema: GatewaySchema, **options: Any) -> None:
        super().__init__(schema, **options)
        self.documents = schema.documents

    def decode_json(self, data: str | bytes) -> object:
        """Every JSON the view reads (bodies, GET parameters, WebSocket messages), depth-checked before decoding."""
        return decode_json(data, max_depth=MAX_REQUEST_JSON_DEPTH)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except JSONTooDeep as exc:
            raise HTTPException(400, exc.reason) from None
        except json.JSONDecodeError as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> Any:
        """strawberry's parsing, after refusing a JSON body that is not an object (strawberry would answer 500).

        Only the first character is looked at: an object or array goes on to strawberry (which refuses arrays,
        batching being off, and invalid JSON), anything else (``42``, ``null``, ``"x"``) is refused here.
        """
        if request.method == "POST":
            content_type, _ = parse_content_type(request.content_type or "")
            if "application/json" in content_type and not _OBJECT_OR_ARRAY_START.match(await request.get_body()):
                raise HTTPException(400, NOT_AN_OBJECT)
        return await super().parse_http_body(request)

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        """One per HTTP request, one per WebSocket connection (shared by its operations)."""
        state = request.app.state
        try:
            caller: Any = await state.verifier.caller(request.headers.get("authorization"))
        except GatewayError as exc:
            caller = exc
        if isinstance(request, WebSocket):  # the connection's access log line names its caller
            record = record_of(request)
            if record is not None:
                record.note(caller=caller)
        return Context(
            service=state.service,
            request_id=request.scope.get("state", {}).get("request_id", "-"),
            caller_or_error=caller,
            request=request,
            response=response,
            live=getattr(state, "live", None),
            live_lists=getattr(state, "live_lists", None),
            subscriptions_per_connection=state.settings.subscriptions_per_connection,
            keep_loaded=not isinstance(request, WebSocket),
            cost_limits=cost_limits(state.settings, state.service),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws ``connection_init``: the caller of the connection's operations.

        A token in the payload (``{"Authorization": "Bearer <jwt>"}``, or key ``authorization``; GraphiQL sends its
        headers editor's headers there) is verified like the header and replaces the upgrade request's caller;
        without one, the header's caller stays. A bad token is not a refused connection but the answer of every
        operation on it: an error with code UNAUTHENTICATED and the reason. (A 4403 close would say less, and
        graphql-ws clients, GraphiQL's among them, retry a 4403 with the same token for about a minute before they
        show anything.)
        """
        authorization = connection_authorization(context.connection_params)
        if authorization is None:
            return UNSET
        caller: Caller | GatewayError
        if not isinstance(authorization, str):
            caller = Unauthenticated("The Authorization of connection_init must be a string: 'Bearer <token>'.")
        else:
            try:
                caller = await context.request.app.state.verifier.caller(authorization)
            except GatewayError as exc:
                caller = exc
        context.authenticate(caller)
        record = record_of(context.request)
        if record is not None:
            record.note(caller=caller)
        return UNSET

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = _SubResponse()
        sub_response.status_code = None  # type: ignore[assignment]
        del sub_response.headers["content-length"]
        if isinstance(request, Request):
            sub_response.request = request
        return sub_response

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Identical queries of the same caller within the cache TTL answer from the read cache, unexecuted.

        The key holds the caller, a digest of the document, its variables and operation name, and the cache's
        generation, so any write through the gateway ends the reuse (a caller always reads its own writes). Only
        answers without errors are kept, and only for documents the document cache remembers (longer ones are
        neither parsed twice nor kept).
        """

        async def execute() -> ExecutionResult:
            return await super(GatewayGraphQL, self).execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )

        caller = context.caller_or_error
        query = request_data.query
        operation_type = self.documents.operation_type(query, request_data.operation_name) if query else None
        if operation_type is OperationType.SUBSCRIPTION:
            raise HTTPException(400, SUBSCRIPTION_OVER_HTTP)
        if isinstance(caller, GatewayError) or not query or operation_type is not OperationType.QUERY:
            return await execute()
        variables = json.dumps(request_data.variables, sort_keys=True, default=str)
        key = ("graphql-response", caller.cache_key, _response_key(query, variables, request_data.operation_name))
        cache = request.app.state.cache
        result: ExecutionResult = await cache.get_or_load(key, execute, keep=lambda result: not result.errors)
        record = record_of(request)
        if record is not None and record.operation is None:  # answered from the cache: no extension saw it
            label = operation_label(self.documents.parse(query), request_data.operation_name)
            record.note(label, code=OK, caller=caller)
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        processed = await super().process_result(request, result)
        formatted: list[dict[str, Any]] = processed.get("errors") or []  # type: ignore[assignment]
        for error in formatted:
            # strawberry skips extensions' after-hooks when its parser cache raises: classify parse errors here.
            if "code" not in (error.get("extensions") or {}):
                error.setdefault("extensions", {})["code"] = request_error_code(error["message"])
        if result.data is None and result.errors and all(error.path is None for error in result.errors):
            request.state.request_error = True  # failed before execution: parse, validation, variables
            if wants_graphql_response(request):
                processed.pop("data", None)
        return processed

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        request = getattr(sub_response, "request", None)
        if request is not None and wants_graphql_response(request):
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
            if getattr(request.state, "request_error", False) and response.status_code == 200:
                response.status_code = 400
        return response

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context=context, root_value=root_value)
        except UnicodeDecodeError:
            body = {"errors": [{"message": "The request body is not UTF-8.", "extensions": {"code": "BAD_REQUEST"}}]}
            return Response(json.dumps(body), status_code=400, media_type="application/json")
        except HTTPException as exc:
            status, headers = exc.status_code, {}
            if "mutation" in exc.reason.lower() and request.method == "GET":
                status, headers = 405, {"Allow": "POST"}
            body = {"errors": [{"message": exc.reason, "extensions": {"code": "BAD_REQUEST"}}]}
            media_type = GRAPHQL_RESPONSE_JSON if wants_graphql_response(request) else "application/json"
            return Response(json.dumps(body), status_code=status, headers=headers, media_type=media_type)


def graphql_app(*, max_depth: int, max_aliases: int, max_tokens: int) -> GatewayGraphQL:
    """The GraphQL endpoint (HTTP and graphql-transport-ws) with these limits (see :mod:`gateway.gql.limits`)."""
    schema = build_schema(max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens)
    return GatewayGraphQL(
        schema,
        graphql_ide="graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        multipart_uploads_enabled=False,
    )
