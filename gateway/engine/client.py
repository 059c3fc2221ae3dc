"""UserTaskClient: the seed's API over one pooled httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, TypedDict, Unpack
from urllib.parse import quote, urlsplit

import httpx

from .auth import (
    ANONYMOUS_TOKEN,
    CallableTokenProvider,
    ClientCredentialsProvider,
    StaticTokenProvider,
    TokenProvider,
    TokenSource,
)
from .circuit import CircuitBreaker, CircuitState
from .errors import (
    ConfigurationError,
    EngineTimeoutError,
    EngineUnavailableError,
    NotFoundError,
    OutcomeUnknownError,
    ProcessCubeException,
    ProtocolError,
    answer_began,
    error_for_response,
    map_engine_errors,
)
from .events import EventMode, UserTaskEventStream
from .retry import RetryPolicy
from .wire import (
    ACTIVITY_EVENTS,
    PROCESS_EVENTS,
    USER_TASK_EVENTS,
    Filter,
    TaskPage,
    authority_from_wire,
    chunk_ids,
    encode_query,
    json_body,
    start_result_from_wire,
    task_page_from_wire,
    user_task_query,
)

__all__ = ["API_PATH", "DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "MAX_URL_LENGTH", "UserTaskClient", "UserTaskFilters"]

API_PATH: Final = "/atlas_engine/api/v1"
DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
#: The longest URL the client sends (httpx's own limit); longer ones raise ConfigurationError before anything is
#: sent. Engines often take less (8 to 16 KiB): `get_user_tasks_by_ids` splits long id lists well below that.
MAX_URL_LENGTH: Final = 65_536
#: keepalive_expiry stays below the 5 s idle timeout of Node.js and uvicorn servers, so that a pooled
#: connection is not reused just as the engine closes it (which would make a write's outcome unknown).
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=4.0)

TokenArg = str | TokenSource | TokenProvider | None


class UserTaskFilters(TypedDict, total=False):
    """What the engine can filter user tasks on. Each takes one value or a list ("any of")."""

    state: Filter
    """running | suspended | finished | terminated | error | canceled; default "suspended", None = any."""
    flow_node_instance_id: Filter
    flow_node_id: Filter
    flow_node_name: Filter
    flow_node_lane: Filter
    correlation_id: Filter
    process_definition_id: Filter
    process_model_id: Filter
    process_model_name: Filter
    process_instance_id: Filter
    parent_process_instance_id: Filter
    previous_flow_node_instance_id: Filter
    owner_id: Filter
    created_at: Filter
    updated_at: Filter


_FILTER_WIRE_NAMES: Final[dict[str, str]] = {
    "flow_node_instance_id": "flowNodeInstanceId",
    "flow_node_id": "flowNodeId",
    "flow_node_name": "flowNodeName",
    "flow_node_lane": "flowNodeLane",
    "correlation_id": "correlationId",
    "process_definition_id": "processDefinitionId",
    "process_model_id": "processModelId",
    "process_model_name": "processModelName",
    "process_instance_id": "processInstanceId",
    "parent_process_instance_id": "parentProcessInstanceId",
    "previous_flow_node_instance_id": "previousFlowNodeInstanceId",
    "owner_id": "ownerId",
    "state": "state",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}

SortDir = Literal["ASC", "DESC"]
RequestHook = Callable[[httpx.Request], None]
#: Called once per HTTP request sent to the engine, when it ended: with its response (any status) or the
#: `ProcessCubeException` it failed with (timeout, connection), and the seconds it took.
ResponseHook = Callable[[httpx.Request, "httpx.Response | ProcessCubeException", float], None]


def _wire_filters(filters: Mapping[str, Any]) -> dict[str, Filter]:
    unknown = set(filters) - set(_FILTER_WIRE_NAMES)
    if unknown:
        raise TypeError(f"unknown user task filter(s): {', '.join(sorted(unknown))}")
    wire: dict[str, Filter] = {"state": filters.get("state", "suspended")}
    for name, value in filters.items():
        wire[_FILTER_WIRE_NAMES[name]] = value
    return wire


def _matches_nothing(filters: Mapping[str, Filter]) -> bool:
    return any(v is not None and not isinstance(v, str) and len(v) == 0 for v in filters.values())


def _token_provider(token: TokenArg) -> TokenProvider:
    if token is None:
        return StaticTokenProvider(ANONYMOUS_TOKEN)
    if isinstance(token, str):
        return StaticTokenProvider(token.removeprefix("Bearer ").strip())
    if isinstance(token, TokenProvider):
        return token
    if callable(token):
        return CallableTokenProvider(token)
    raise ConfigurationError(f"token must be a str, a callable or a TokenProvider, got {type(token).__name__}")


def _default_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    # The aiohttp transport keeps httpx's API but not httpx's pool, which collapses under many concurrent
    # requests (encode/httpx#3215). Imported lazily: nothing happens at import time.
    from aiohttp import ClientSession
    from httpx_aiohttp import AiohttpTransport

    class NoResendTransport(AiohttpTransport):
        """aiohttp sends an "idempotent" request (GET, HEAD, OPTIONS, TRACE, **PUT, DELETE**) a second time when its
        connection is reset or closed (`ClientSession._request`: `retry_persistent_connection`, aiohttp 3.9 to at
        least 3.14), on a reused connection or not. The engine's finish, reserve and cancel are PUT and DELETE, and a
        finish is not idempotent: the resend may reach an engine that already applied the first (its 404 then hides
        the success), or fail to connect and turn a write that happened into "never sent". So the session never
        resends anything; the client's own `RetryPolicy` decides, and it resends a write only when it was never sent.
        aiohttp has no public switch for this: the attribute is the one its own test utilities set, and
        `tests/engine/test_no_resend.py` fails if it stops working."""

        def get_client(self) -> ClientSession:
            session = super().get_client()
            if not hasattr(session, "_retry_connection"):  # pragma: no cover - a future aiohttp
                raise RuntimeError("aiohttp.ClientSession has no _retry_connection: writes could be resent")
            session._retry_connection = False
            return session

    transport: httpx.AsyncBaseTransport = NoResendTransport(limits=limits, trust_env=False)
    return transport


class UserTaskClient:
    """Async client for the user tasks of a ProcessCube engine.

    One instance owns one connection pool: create it once (`async with UserTaskClient(url) as client`)
    and share it. Credentials:

    - none: the anonymous dummy token (the engine must allow anonymous root access);
    - `client_id` + `client_secret` (+ `authority_url`, else asked from the engine): OAuth 2.0 client
      credentials, cached and refreshed;
    - `token`: a fixed bearer token, a zero-argument callable returning one (sync or async), or a
      `TokenProvider`. `with_token()` makes a view with another token that shares this pool.

    Every failure is a `ProcessCubeException` (see `gateway.engine.errors`). Reads are retried on
    connection errors and 503 (`retry=`); writes only when the request provably never left. Nothing is ever sent
    twice behind the caller's back (the transport's own resend is off). A circuit breaker (`circuit=`, see
    `gateway.engine.circuit`) fails calls at once while the engine is unreachable; `circuit_state` tells its state.
    """

    def __init__(
        self,
        engine_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        authority_url: str | None = None,
        scope: str = "engine_read engine_write",
        token: TokenArg = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        clock: Callable[[], float] = time.time,
        circuit: CircuitBreaker | None = None,
    ) -> None:
        parts = urlsplit(engine_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"engine_url must be an http(s) URL, got {engine_url!r}")
        if (client_id is None) != (client_secret is None):
            raise ConfigurationError("client_id and client_secret go together: give both or neither")
        if client_id is not None and token is not None:
            raise ConfigurationError("give either token or client credentials, not both")
        if authority_url is not None and client_id is None:
            raise ConfigurationError("authority_url is only used with client_id and client_secret")
        self.engine_url: Final = engine_url.rstrip("/")
        self._api = self.engine_url + API_PATH
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport if transport is not None else _default_transport(limits),
            follow_redirects=False,
            trust_env=False,
        )
        self._owner = True
        self._parent: UserTaskClient | None = None
        self._retry = retry if retry is not None else RetryPolicy()
        self._circuit = circuit if circuit is not None else CircuitBreaker()
        self._on_request = on_request
        self._on_response = on_response
        self._request_count = 0
        self._closed = False
        self._streams: set[UserTaskEventStream] = set()
        self._tokens: TokenProvider
        if client_id is not None and client_secret is not None:
            self._tokens = ClientCredentialsProvider(
                self._http,
                engine_api_url=self._api,
                client_id=client_id,
                client_secret=client_secret,
                authority_url=authority_url,
                scope=scope,
                clock=clock,
            )
        else:
            self._tokens = _token_provider(token)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> UserTaskClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool and end every event stream. A view (`with_token`) closes nothing shared."""
        if self._closed:
            return
        self._closed = True
        streams, self._streams = list(self._streams), set()
        for stream in streams:
            await stream.aclose()
        if self._owner:
            await self._http.aclose()

    close = aclose  # the seed's name

    @property
    def closed(self) -> bool:
        return self._closed or (self._parent is not None and self._parent.closed)

    def with_token(
        self, token: str | TokenSource | TokenProvider, *, on_request: RequestHook | None = None
    ) -> UserTaskClient:
        """A lightweight view that sends `token` instead, sharing this client's pool and settings.

        The gateway holds one client per process and forwards each caller's own token this way (and
        can count a request's engine calls with the view's `request_count` or its own `on_request`).
        Closing the view closes nothing; closing this client ends the view too.
        """
        view = object.__new__(UserTaskClient)
        view.__dict__.update(self.__dict__)
        view._owner = False
        view._parent = self
        view._request_count = 0
        view._closed = False
        view._streams = set()
        view._tokens = _token_provider(token)
        if on_request is not None:
            view._on_request = on_request
        return view

    @property
    def request_count(self) -> int:
        """How many HTTP requests this client (or view) sent to the engine, retries included.

        A client's count includes the requests of its views; token requests to the authority are not
        counted.
        """
        return self._request_count

    @property
    def token_provider(self) -> TokenProvider:
        return self._tokens

    @property
    def circuit_state(self) -> CircuitState:
        """The circuit breaker's state, shared by this client and its views: closed, open or half_open."""
        return self._circuit.state

    @property
    def circuit(self) -> CircuitBreaker:
        return self._circuit

    # -- user tasks --------------------------------------------------------------------------------

    async def get_user_tasks(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort_by: str | None = None,
        sort_dir: SortDir = "ASC",
        **filters: Unpack[UserTaskFilters],
    ) -> list[dict[str, Any]]:
        """The user tasks matching the filters (default: every waiting task, `state="suspended"`).

        Each task is a dict with the seed's keys (`userTaskInstanceId`, `flowNodeId`, `processInstanceId`,
        `processModelId`, `token`, `reservedFor`) and every field the engine sent (`flowNodeName`,
        `flowNodeLane`, `correlationId`, `state`, `formFields`, `startedAt`, …). Without `limit` the
        engine returns all matches; `query_user_tasks` also gives the total count, `iter_user_tasks` pages.
        """
        page = await self.query_user_tasks(limit=limit, offset=offset, sort_by=sort_by, sort_dir=sort_dir, **filters)
        return page.items

    async def query_user_tasks(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort_by: str | None = None,
        sort_dir: SortDir = "ASC",
        **filters: Unpack[UserTaskFilters],
    ) -> TaskPage:
        """One page of user tasks and the engine's `totalCount` of all matches."""
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        if offset < 0:
            raise ValueError("offset must not be negative")
        wire = _wire_filters(filters)
        if _matches_nothing(wire):
            return TaskPage([], 0, offset, limit)
        params = user_task_query(wire, offset=offset, limit=limit, sort_by=sort_by, sort_dir=sort_dir)
        response = await self._request(
            "GET", "/flow_node_instances", query=encode_query(params), write=False, what="query user tasks"
        )
        body = json_body(response.content, "GET /flow_node_instances")
        return task_page_from_wire(body, offset=offset, limit=limit)

    async def iter_user_tasks(
        self,
        *,
        page_size: int = 100,
        sort_by: str | None = None,
        sort_dir: SortDir = "ASC",
        **filters: Unpack[UserTaskFilters],
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching task, fetched `page_size` at a time.

        Pages are cut by offset: a task that leaves the filter meanwhile (finished while iterating over
        suspended tasks) shifts later pages. To work off a queue, re-query from offset 0 instead.
        """
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        offset = 0
        while True:
            page = await self.query_user_tasks(
                limit=page_size, offset=offset, sort_by=sort_by, sort_dir=sort_dir, **filters
            )
            for task in page.items:
                yield task
            offset += len(page.items)
            if len(page.items) < page_size or offset >= page.total_count:
                return

    async def count_user_tasks(self, **filters: Unpack[UserTaskFilters]) -> int:
        """The number of matching tasks (one request that fetches a single task)."""
        return (await self.query_user_tasks(limit=1, **filters)).total_count

    async def get_user_task(self, user_task_instance_id: str) -> dict[str, Any]:
        """The task with this id, in whatever state it is.

        Raises `NotFoundError` when there is none (or the caller may not see it), the same error the
        task actions raise for an unknown id, so one `except NotFoundError` covers reads and writes.
        """
        tasks = await self.get_user_tasks_by_ids([user_task_instance_id])
        for task in tasks:
            if task["userTaskInstanceId"] == user_task_instance_id:
                return task
        raise NotFoundError(
            f"user task {user_task_instance_id!r} not found",
            status=404,
            error_class_name="NotFoundError",
        )

    async def get_user_tasks_by_ids(self, ids: Iterable[str], *, state: Filter = None) -> list[dict[str, Any]]:
        """The tasks with these ids, any state by default, in one engine call (`flowNodeInstanceId=a,b,c`).

        Unknown ids are left out; the result follows the engine's order. Long lists are split into
        several calls so that no URL exceeds common limits (8 KiB).
        """
        unique = list(dict.fromkeys(ids))
        if not unique:
            return []
        chunks = chunk_ids(unique)
        pages = await asyncio.gather(
            *(self.query_user_tasks(flow_node_instance_id=chunk, state=state) for chunk in chunks)
        )
        return [task for page in pages for task in page.items]

    async def reserve_user_task(self, user_task_instance_id: str, owner_id: str) -> None:
        """Reserve the task for `owner_id` (409 ConflictError when someone else holds it)."""
        await self._request(
            "PUT",
            f"/user_tasks/{quote(user_task_instance_id, safe='')}/reserve",
            json={"actualOwnerId": owner_id},
            write=True,
            what=f"reserve user task {user_task_instance_id}",
        )

    async def cancel_reservation_user_task(self, user_task_instance_id: str) -> None:
        """Cancel the task's reservation."""
        await self._request(
            "DELETE",
            f"/user_tasks/{quote(user_task_instance_id, safe='')}/cancel-reservation",
            write=True,
            what=f"cancel reservation of user task {user_task_instance_id}",
        )

    async def finish_user_task(self, user_task_instance_id: str, result: Mapping[str, Any]) -> None:
        """Finish the task with `result` (a flat JSON object: form field id -> value)."""
        await self._request(
            "PUT",
            f"/user_tasks/{quote(user_task_instance_id, safe='')}/finish",
            json=dict(result) if isinstance(result, Mapping) else result,
            write=True,
            what=f"finish user task {user_task_instance_id}",
        )

    # -- process models and instances (so that tests and examples can create work) ----------------

    async def deploy_process(self, xml: str, *, overwrite_existing: bool = True) -> None:
        """Deploy a BPMN definition (`POST /process_definitions`)."""
        await self._request(
            "POST",
            "/process_definitions",
            json={"xml": xml, "overwriteExisting": overwrite_existing},
            write=True,
            what="deploy process definition",
        )

    async def start_process_instance(
        self,
        process_model_id: str,
        *,
        start_event_id: str | None = None,
        correlation_id: str | None = None,
        initial_token: Mapping[str, Any] | None = None,
        return_on: Literal[1, 2, 3] = 1,
        end_event_id: str | None = None,
    ) -> dict[str, Any]:
        """Start an instance; returns `{"processInstanceId", "correlationId", …}`.

        `return_on`: 1 = when created, 2 = when finished, 3 = when `end_event_id` is reached.
        """
        body: dict[str, Any] = {"processModelId": process_model_id, "returnOn": return_on}
        if start_event_id is not None:
            body["startEventId"] = start_event_id
        if correlation_id is not None:
            body["correlationId"] = correlation_id
        if initial_token is not None:
            body["initialToken"] = dict(initial_token)
        if end_event_id is not None:
            body["endEventId"] = end_event_id
        response = await self._request(
            "POST",
            f"/process_models/{quote(process_model_id, safe='')}/start",
            json=body,
            write=True,
            what=f"start process model {process_model_id}",
        )
        return start_result_from_wire(json_body(response.content, "start process instance"))

    async def terminate_process_instance(self, process_instance_id: str) -> None:
        await self._request(
            "PUT",
            f"/process_instances/{quote(process_instance_id, safe='')}/terminate",
            write=True,
            what=f"terminate process instance {process_instance_id}",
        )

    async def get_info(self) -> dict[str, Any]:
        """The engine's ApplicationInfo (name, version, allowAnonymousRootAccess, …)."""
        response = await self._request("GET", "/info", write=False, what="GET /info")
        body = json_body(response.content, "GET /info")
        if not isinstance(body, dict):
            raise ProtocolError(f"GET /info answered {body!r}, not an object")
        return body

    # -- the authority (for whoever verifies the engine's tokens) ----------------------------------

    async def get_authority_url(self) -> str:
        """The URL of the authority that issues the engine's tokens, without a trailing slash.

        The one this client authenticates at when it uses client credentials (given, or already discovered);
        else the engine's answer to `GET /authority` (asked each time: cache it). Sends no token.
        """
        if isinstance(self._tokens, ClientCredentialsProvider) and self._tokens.authority_url:
            return self._tokens.authority_url
        url = self._api + "/authority"
        return authority_from_wire(json_body(await self._get_without_token(url, "GET /authority"), "GET /authority"))

    async def get_json(self, url: str) -> object:
        """GET any absolute URL without a token and parse its JSON (an authority's discovery document, its JWKS).

        Through the same pool, timeouts, retries of reads and error mapping as every engine call: failures are
        `ProcessCubeException`s (an error status the `EngineError` for it, a non-JSON body a `ProtocolError`).
        Not counted in `request_count`.
        """
        return json_body(await self._get_without_token(url, f"GET {url[:200]}"), f"GET {url[:200]}")

    async def _get_without_token(self, url: str, what: str) -> bytes:
        if self.closed:
            raise RuntimeError("this UserTaskClient is closed")
        retries = 0
        while True:
            try:
                with map_engine_errors(what=what):
                    request = self._http.build_request("GET", url, headers={"Accept": "application/json"})
                response = await self._send(request, write=False, what=what, probe=self._circuit.before_call(what))
                if not response.is_success:
                    raise error_for_response(response)
                return response.content
            except ProcessCubeException as exc:
                if not self._retry.should_retry(exc, attempt=retries, write=False):
                    raise
                await self._retry.wait(retries)
                retries += 1

    async def _send(self, request: httpx.Request, *, write: bool, what: str, probe: bool) -> httpx.Response:
        """Send one request the circuit breaker let through (`probe`: as its half-open probe) and tell the breaker
        how it ended; every failure mapped (`map_engine_errors`)."""
        try:
            with map_engine_errors(write=write, what=what):
                response = await self._http.send(request)
        except (EngineUnavailableError, OutcomeUnknownError) as exc:
            if isinstance(exc, OutcomeUnknownError) and exc.timed_out:
                self._circuit.abandoned(probe)
            elif answer_began(exc):  # an answer came, its body broke off: reachable
                self._circuit.succeeded(probe)
            else:  # no connection, or the connection lost before any answer
                self._circuit.failed(probe)
            raise
        except EngineTimeoutError:
            self._circuit.abandoned(probe)
            raise
        except ProcessCubeException:  # something answered, if not in HTTP
            self._circuit.succeeded(probe)
            raise
        except BaseException:  # cancelled: tells nothing
            self._circuit.abandoned(probe)
            raise
        self._circuit.succeeded(probe)
        return response

    # -- events ------------------------------------------------------------------------------------

    def user_task_events(
        self,
        events: Sequence[str] = USER_TASK_EVENTS,
        *,
        mode: EventMode = "auto",
        long_poll_timeout: float = 120.0,
        on_connect: Callable[[str], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> UserTaskEventStream:
        """An async iterator over the engine's user task events, reconnecting after a drop.

        `mode="auto"` uses Socket.IO and falls back to long polling when the engine offers no Socket.IO;
        "socketio" and "long_polling" force one. Events that happen while disconnected are lost: re-read
        the tasks after a reconnect if that matters. Stop with `await stream.aclose()` (or
        `async with`); closing the client ends every stream.

        `on_connect(transport)` is called at every (re)connect, in order with the events ("socketio" or
        "long_polling"): from the second call on, events may have been missed in between. `on_disconnect()` is
        called when a Socket.IO connection drops (long polling has no connection to lose). `events` may also name
        the engine's process events (`PROCESS_EVENTS`: a process that ends takes its waiting tasks with it) and
        `activity_canceled` (`ACTIVITY_EVENTS`: a boundary event cut a task short).
        """
        for name in events:
            if name not in USER_TASK_EVENTS + PROCESS_EVENTS + ACTIVITY_EVENTS:
                raise ValueError(f"unknown user task event {name!r}")
        root = self
        while root._parent is not None:  # streams end when the pool's owner closes
            root = root._parent
        stream = UserTaskEventStream(
            events=tuple(events),
            mode=mode,
            engine_url=self.engine_url,
            get_token=self._tokens.get_token,
            long_poll=self._long_poll,
            long_poll_timeout=long_poll_timeout,
            backoff=self._retry,
            on_close=root._streams.discard,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )
        root._streams.add(stream)
        return stream

    async def _long_poll(self, event: str, wait: float) -> object | None:
        response = await self._request(
            "GET",
            f"/notifications/long_polling/{quote(event, safe='')}",
            write=False,
            what=f"long polling {event}",
            read_timeout=httpx.Timeout(wait, connect=DEFAULT_TIMEOUT.connect),
        )
        if response.status_code == 204 or not response.content:
            return None
        return json_body(response.content, f"long polling {event}")

    # -- the one request path ----------------------------------------------------------------------

    def _count(self, request: httpx.Request) -> None:
        client: UserTaskClient | None = self
        while client is not None:
            client._request_count += 1
            client = client._parent
        if self._on_request is not None:
            self._on_request(request)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        write: bool,
        what: str,
        query: str | None = None,
        json: Any = None,
        read_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        if self.closed:
            raise RuntimeError("this UserTaskClient is closed")
        url = self._api + path + (f"?{query}" if query else "")
        if len(url) > MAX_URL_LENGTH:
            raise ConfigurationError(
                f"{what}: the request's URL would be {len(url)} characters, over the {MAX_URL_LENGTH} that can be"
                " sent; ask for fewer or shorter filter values per call"
            )
        retries = 0
        auth_retried = False
        while True:
            try:
                token = await self._tokens.get_token()
                with map_engine_errors(write=write, what=f"{what} ({method} {path[:200]})"):
                    # built inside the mapping: httpx.InvalidURL (a URL too long, …) is a ConfigurationError too
                    request = self._http.build_request(
                        method,
                        url,
                        json=json,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                        timeout=read_timeout if read_timeout is not None else httpx.USE_CLIENT_DEFAULT,
                    )
                # an open circuit fails the call here, before it counts as a request sent
                probe = self._circuit.before_call(f"{what} ({method} {path[:200]})")
                self._count(request)
                sent = time.perf_counter()
                try:
                    response = await self._send(
                        request, write=write, what=f"{what} ({method} {path[:200]})", probe=probe
                    )
                except ProcessCubeException as exc:
                    if self._on_response is not None:
                        self._on_response(request, exc, time.perf_counter() - sent)
                    raise
                if self._on_response is not None:
                    self._on_response(request, response, time.perf_counter() - sent)
                if response.status_code == 401 and not auth_retried:
                    fresh = await self._tokens.refresh(token)
                    if fresh is not None and fresh != token:
                        auth_retried = True
                        continue
                if not response.is_success:
                    raise error_for_response(response)
                return response
            except ProcessCubeException as exc:
                if not self._retry.should_retry(exc, attempt=retries, write=write):
                    raise
                await self._retry.wait(retries)
                retries += 1
