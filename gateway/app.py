"""``create_app(settings)``: the gateway as one Starlette app.

The lifespan owns the process's resources: the embedded engine and its supervisor (when no engine URL is
configured), the one engine client (one connection pool), the token verifier, the read cache and the service.
Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .adapters.client_engine import ClientEngine, request_counter, response_observer
from .adapters.embedded_engine import EmbeddedEngine, Supervisor
from .adapters.engine_changes import engine_changes
from .adapters.identity import TokenVerifier
from .adapters.redis_state import RedisIdempotencyStore
from .assets import static_files_mount
from .config import Settings
from .core.cache import ReadCache
from .core.cursor import CursorCodec
from .core.hub import ChangeHub, HubLimits
from .core.idempotency import IdempotencyRecords, IdempotencyStore
from .core.live import LiveService
from .core.live_lists import LiveLists
from .core.service import ServiceLimits, TaskService
from .engine import ProcessCubeException, UserTaskClient
from .gql.app import graphql_app
from .health import Check, ReadinessProbe, healthz, livez, readyz
from .metrics import GatewayMetrics, LiveFigures, metrics
from .middleware import BodyTooLarge, GatewayMiddleware, body_too_large
from .rest import EXCEPTION_HANDLERS, rest_routes

log = logging.getLogger("gateway")


def routes(settings: Settings) -> list[BaseRoute]:
    graphql = graphql_app(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_query_tokens,
    )
    return [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *rest_routes(),
        static_files_mount("/static"),
    ]


async def _follow_engine(hub: ChangeHub, client: UserTaskClient) -> None:
    """Run the hub on the engine's events; a stream that ends with an error is started again (and said)."""
    while True:
        try:
            await hub.run(engine_changes(client))
        except asyncio.CancelledError:
            raise
        except ProcessCubeException as exc:  # refused credentials, an engine without notifications: said, retried
            log.error("the engine event stream failed (%s); starting it again in 5 s", exc)
        except Exception:
            log.exception("the engine event stream failed; starting it again in 5 s")
        hub.gap("The engine's event stream failed and is being restarted: changes may have been missed.")
        await asyncio.sleep(5)


def _readiness_checks(app: Starlette, settings: Settings) -> dict[str, Check]:
    """What ``/readyz`` asks (see :mod:`gateway.health`): each check raises, with a reason, when its part is missing."""
    state = app.state

    async def engine() -> None:
        supervisor: Supervisor | None = state.supervisor
        if supervisor is not None and not supervisor.status().up:
            raise RuntimeError("The embedded engine is restarting.")
        await state.client.get_info()

    async def authority() -> None:
        await state.verifier.authority_reachable()

    async def event_stream() -> None:
        if not state.hub.connected:
            raise RuntimeError("The engine event stream is not connected (it is being re-established).")

    async def redis() -> None:
        await state.idempotency.ping()

    checks: dict[str, Check] = {"engine": engine, "authority": authority, "eventStream": event_stream}
    if settings.redis_url is not None:
        checks["redis"] = redis
    return checks


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedEngine | None = None
        supervisor: Supervisor | None = None
        engine_url = settings.engine_url
        if engine_url is None:
            embedded = EmbeddedEngine(
                port=settings.embedded_engine_port,
                data_dir=settings.embedded_engine_data_dir,
                demo=settings.embedded_engine_demo,
            )
            # The first start fails the gateway's start (a taken port is a configuration error); once it runs,
            # the supervisor restarts the engine whenever it dies, on the same port, so engine_url stays valid.
            process = await embedded.spawn()
            engine_url = embedded.url
            supervisor = Supervisor(embedded.spawn, name="embedded engine")
            supervisor.watch(process)
            log.info("embedded engine at %s (pid %d)", engine_url, process.pid)
        if settings.unsafe_anonymous_root:
            log.warning(
                "GATEWAY_UNSAFE_ANONYMOUS_ROOT is on: requests without a token act as the engine's anonymous root"
                " user (every task of every lane). Never in production."
            )
        client = UserTaskClient(
            engine_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authority_url=settings.authority_url if settings.client_id else None,
            timeout=settings.engine_timeout_seconds,
            on_request=request_counter(app.state.metrics.engine_request),
            on_response=response_observer(app.state.metrics.engine_response),
        )

        app.state.engine_url = engine_url
        app.state.supervisor = supervisor
        app.state.client = client
        # The authority, its discovery document and keys come through the engine client: one pool, one error mapping.
        app.state.verifier = TokenVerifier(
            client,
            authority_url=settings.authority_url,
            allow_anonymous=settings.allow_anonymous,
            anonymous_root=settings.unsafe_anonymous_root,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
        )
        app.state.cache = ReadCache(
            ttl_seconds=settings.cache_ttl_seconds,
            max_entries=settings.cache_max_entries,
            max_bytes=settings.cache_max_bytes,
        )
        # Idempotency records: in Redis with GATEWAY_REDIS_URL (every instance sees every key), else in this process.
        shared = (
            RedisIdempotencyStore.from_url(settings.redis_url, ttl_seconds=settings.idempotency_ttl_seconds)
            if settings.redis_url
            else None
        )
        idempotency: IdempotencyRecords = shared or IdempotencyStore(ttl_seconds=settings.idempotency_ttl_seconds)
        app.state.idempotency = idempotency
        cursor_secret = settings.cursor_secret
        if shared is not None and not settings.cursor_secret_configured:  # a cursor of one instance is good on all
            cursor_secret = await shared.shared_cursor_secret(fallback=settings.cursor_secret)
        app.state.service = TaskService(
            ClientEngine(client),
            app.state.cache,
            CursorCodec(cursor_secret),
            ServiceLimits(
                default_page_size=settings.default_page_size,
                max_page_size=settings.max_page_size,
                max_batch_size=settings.max_batch_size,
                batch_concurrency=settings.batch_concurrency,
                residual_scan_limit=settings.residual_scan_limit,
            ),
        )
        # One engine event stream per process: it keeps the cache true and feeds every live subscription.
        hub = ChangeHub(
            invalidate=app.state.cache.invalidate,
            limits=HubLimits(
                replay_buffer=settings.replay_buffer,
                queue_size=settings.subscription_queue,
                per_caller=settings.subscriptions_per_caller,
                total=settings.max_subscriptions,
            ),
        )
        app.state.hub = hub
        app.state.live = LiveService(app.state.service, hub)
        app.state.live_lists = LiveLists(app.state.service, hub, min_interval=settings.live_list_interval_ms / 1000)
        lists: LiveLists = app.state.live_lists
        app.state.metrics.watch_live(
            lambda: LiveFigures(
                hub.events_received, hub.connects, hub.gaps, hub.subscription_count, lists.distinct_lists
            )
        )
        app.state.readiness = ReadinessProbe(_readiness_checks(app, settings))
        app.state.metrics.watch_cache(app.state.cache)
        app.state.metrics.watch_stream(hub)
        app.state.metrics.watch_circuit(lambda: client.circuit.is_open)
        streaming = asyncio.get_running_loop().create_task(_follow_engine(hub, client), name="engine events")
        try:
            yield
        finally:
            if supervisor is not None:
                await supervisor.stop()  # first: stopping the engine below is no crash to repair
            hub.close()  # every live subscription ends with SHUTTING_DOWN (if the server did not close it yet)
            await app.state.live_lists.close()
            streaming.cancel()
            with contextlib.suppress(TimeoutError):  # a disconnect from a gone engine must not hold the shutdown
                await asyncio.wait_for(asyncio.gather(streaming, return_exceptions=True), 3)
            await client.aclose()
            if shared is not None:
                await shared.aclose()
            if embedded is not None:
                await embedded.stop()

    app = Starlette(
        routes=routes(settings),
        middleware=[Middleware(GatewayMiddleware, max_body_bytes=settings.max_body_bytes)],
        exception_handlers={BodyTooLarge: body_too_large, **EXCEPTION_HANDLERS},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = GatewayMetrics()
    return app
