"""Prometheus metrics of one gateway app, served unauthenticated at ``GET /metrics`` (text format).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (not the process-wide one), so several apps in
one process (tests) count apart. Every label set is bounded: faces, operation names from the code (REST operations,
GraphQL root fields of the schema), the error codes of :mod:`gateway.core.errors`, HTTP methods, error kinds.
Never a task id, a user, a path with an id, or an operation name a client chose.

**Requests** (measured by :class:`~gateway.middleware.GatewayMiddleware` from the request record,
:mod:`gateway.record`):

- ``gateway_requests_total{face,operation,code}``: answered requests. ``face``: ``graphql``, ``rest`` or ``other``
  (health, metrics, static files, docs). ``operation``: the REST operation (``list_user_tasks``,
  ``get_user_task``, ``finish_user_task``, ``reserve_user_task``, ``cancel_user_task_reservation``, …;
  ``unmatched`` for a path under /api that names no resource), for GraphQL the operation type and its one root
  field (``query.userTasks``, ``mutation.finishUserTask``; ``query.multiple`` for several root fields;
  ``invalid`` for a document that does not parse or validate, or a request that carries none; ``graphiql`` for the
  IDE page), for other routes their route name (``healthz``, ``metrics``, ``static``, …). ``code``: ``OK`` or the
  gateway error code (``TASK_NOT_FOUND``, ``BAD_REQUEST``, ``UNAUTHENTICATED``, …; ``NOT_READY`` for a 503 of a
  health check; ``INTERNAL`` for an unexpected failure). GraphQL takes the first error's ``extensions.code``, or
  the code of the union member a single-task mutation answered (``UserTaskNotFound``: ``TASK_NOT_FOUND``).
  GraphQL operations over WebSocket are counted here too (when their first message is sent: a subscription's
  snapshot, first event or error), the connection itself is not. *Alert on* the rate of ``code="INTERNAL"``, of
  ``ENGINE_*`` codes, and on a jump in ``UNAUTHENTICATED``.
- ``gateway_request_duration_seconds{face,operation}`` (histogram): time from the request's arrival to the end of
  its answer (HTTP only; an SSE stream's whole life, so read ``user_task_events`` apart). *Alert on* p99 of the
  task operations over the SLO.
- ``gateway_idempotent_replays_total{face}``: answers replayed for a repeated ``Idempotency-Key`` (REST,
  ``Idempotent-Replayed: true``). Many replays mean clients that retry a lot (timeouts upstream).

**Engine** (the engine client's request and response hooks, :mod:`gateway.adapters.client_engine`):

- ``gateway_engine_requests_total{method}``: HTTP requests sent to the engine, retries included, by method.
- ``gateway_engine_request_duration_seconds{method}`` (histogram): how long each took (to the end of its body).
  *Alert on* p99 approaching ``GATEWAY_ENGINE_TIMEOUT_SECONDS``.
- ``gateway_engine_circuit_open``: 1 while the engine client's circuit breaker fails calls at once (the engine was
  unreachable for several calls in a row, :mod:`gateway.engine.circuit`), else 0. *Alert on* 1 for more than a
  minute: the engine is down or cut off.
- ``gateway_engine_errors_total{kind}``: engine requests that failed: ``timeout``, ``connect`` (refused,
  dropped), ``http_4xx`` (includes the expected 404/409 of task actions), ``http_5xx``, ``invalid_response``
  (a redirect, a broken reply), ``other``. *Alert on* any sustained rate of ``timeout``, ``connect`` or
  ``http_5xx``.

**Read cache** (read at each scrape from :class:`~gateway.core.cache.ReadCache`):

- ``gateway_cache_hits_total``, ``gateway_cache_misses_total``: reads answered from the cache (or from a load in
  flight: single flight) and reads that loaded; ``gateway_cache_entries``, ``gateway_cache_bytes``: what it holds
  now (bytes estimated). A hit ratio that drops to 0 under load means the TTL or the size is too small.

**Live** (read at each scrape from the change hub and the live lists):

- ``gateway_engine_events_total``, ``gateway_engine_stream_connects_total``, ``gateway_engine_stream_gaps_total``:
  engine events heard on the one event stream, its (re)connects, and the times it was interrupted (each one told
  to every live subscriber as a gap). *Alert on* gaps increasing.
- ``gateway_engine_stream_up``: 1 while the engine event stream is connected, else 0. *Alert on* 0 for more than
  a minute (live lists stop updating, and the read cache of other gateway processes is not invalidated).
- ``gateway_engine_stream_last_event_age_seconds``: seconds since the last engine event arrived (no sample before
  the first one). Engine events carry no timestamp of their own, so the lag between the engine and the gateway
  cannot be measured; this age is what can: high while tasks are being worked on means a stalled stream.
- ``gateway_live_subscriptions``, ``gateway_live_lists``: live subscriptions held now (events, lists, SSE), and
  the distinct live lists they share (each refreshed once per change, whatever its number of subscribers).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from .record import count_engine_call

ENGINE_REQUESTS = "gateway_engine_requests"

#: HTTP methods as the engine request counter labels them (anything else: OTHER, so the label stays bounded).
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
#: What a label value from the code looks like; anything else is labelled "other" (a bug must not explode a label).
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")
_FACES = frozenset({"graphql", "rest", "other"})
_ERROR_KINDS = frozenset({"timeout", "connect", "http_4xx", "http_5xx", "invalid_response", "other"})

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ENGINE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _bounded(value: str | None, default: str) -> str:
    if value is None:
        return default
    return value if _LABEL.fullmatch(value) else "other"


class CacheFigures(Protocol):
    hits: int
    loads: int

    @property
    def estimated_bytes(self) -> int: ...

    def __len__(self) -> int: ...


class StreamFigures(Protocol):
    connected: bool
    last_event_at: float | None


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by face, operation and outcome code.",
            ["face", "operation", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds",
            "Time to answer a request, by face and operation.",
            ["face", "operation"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.replays = Counter(
            "gateway_idempotent_replays",
            "Answers replayed for a repeated Idempotency-Key.",
            ["face"],
            registry=self.registry,
        )
        self.engine_requests = Counter(
            ENGINE_REQUESTS,
            "HTTP requests sent to the engine, retries included.",
            ["method"],
            registry=self.registry,
        )
        self.engine_seconds = Histogram(
            "gateway_engine_request_duration_seconds",
            "Time of one HTTP request to the engine.",
            ["method"],
            buckets=ENGINE_BUCKETS,
            registry=self.registry,
        )
        self.engine_errors = Counter(
            "gateway_engine_errors",
            "HTTP requests to the engine that failed, by kind.",
            ["kind"],
            registry=self.registry,
        )
        for kind in sorted(_ERROR_KINDS):  # every kind exported from the start (0): rate() alerts see them
            self.engine_errors.labels(kind=kind)
        self._live = _LiveCollector(lambda: LiveFigures(0, 0, 0, 0, 0))
        self.registry.register(self._live)
        self._state = _StateCollector()
        self.registry.register(self._state)

    # -- what the gateway tells ----------------------------------------------------------------------------------

    def request(self, face: str, operation: str | None, code: str | None, seconds: float | None = None) -> None:
        """One answered request (or one GraphQL operation over WebSocket: ``seconds`` None, not timed)."""
        face = face if face in _FACES else "other"
        operation = _bounded(operation, "unknown")
        self.requests.labels(face=face, operation=operation, code=_bounded(code, "OK")).inc()
        if seconds is not None:
            self.request_seconds.labels(face=face, operation=operation).observe(seconds)

    def replay(self, face: str) -> None:
        self.replays.labels(face=face if face in _FACES else "other").inc()

    def engine_request(self, method: str) -> None:
        """One HTTP request sent to the engine (the engine client's request hook calls this); it also counts for the
        request being served (its access log's ``engineCalls``)."""
        self.engine_requests.labels(method=method if method in _METHODS else "OTHER").inc()
        count_engine_call()

    def engine_response(self, method: str, seconds: float, error: str | None) -> None:
        """One engine request ended (the response hook): its time, and its error kind when it failed."""
        self.engine_seconds.labels(method=method if method in _METHODS else "OTHER").observe(seconds)
        if error is not None:
            self.engine_errors.labels(kind=error if error in _ERROR_KINDS else "other").inc()

    # -- what is read at each scrape ----------------------------------------------------------------------------

    def watch_live(self, read: Callable[[], LiveFigures]) -> None:
        """Expose these live figures, read at each scrape (the hub keeps them; nothing is counted twice)."""
        self._live.read = read

    def watch_cache(self, cache: CacheFigures) -> None:
        self._state.cache = cache

    def watch_stream(self, stream: StreamFigures) -> None:
        self._state.stream = stream

    def watch_circuit(self, is_open: Callable[[], bool]) -> None:
        """Expose the engine circuit breaker's state (``gateway_engine_circuit_open``), read at each scrape."""
        self._state.circuit_open = is_open

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class LiveFigures(NamedTuple):
    events: int
    connects: int
    gaps: int
    subscriptions: int
    lists: int


class _LiveCollector(Collector):
    def __init__(self, read: Callable[[], LiveFigures]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        figures = self.read()
        yield CounterMetricFamily("gateway_engine_events", "Engine events heard on the event stream.", figures.events)
        yield CounterMetricFamily(
            "gateway_engine_stream_connects", "Times the engine event stream connected.", figures.connects
        )
        yield CounterMetricFamily(
            "gateway_engine_stream_gaps", "Times the engine event stream was interrupted.", figures.gaps
        )
        yield GaugeMetricFamily("gateway_live_subscriptions", "Live subscriptions held now.", figures.subscriptions)
        yield GaugeMetricFamily("gateway_live_lists", "Distinct live lists refreshed on changes.", figures.lists)


class _StateCollector(Collector):
    """The read cache's and the engine event stream's figures, read at each scrape (0 before the app started)."""

    def __init__(self) -> None:
        self.cache: CacheFigures | None = None
        self.stream: StreamFigures | None = None
        self.circuit_open: Callable[[], bool] = lambda: False

    def collect(self) -> Iterator[Metric]:
        cache = self.cache  # (an empty cache is falsy: it has a length)
        hits, loads = (cache.hits, cache.loads) if cache is not None else (0, 0)
        yield CounterMetricFamily("gateway_cache_hits", "Reads answered from the read cache (or a shared load).", hits)
        yield CounterMetricFamily("gateway_cache_misses", "Reads that loaded (from the engine).", loads)
        yield GaugeMetricFamily(
            "gateway_cache_entries", "Entries in the read cache now.", len(cache) if cache is not None else 0
        )
        yield GaugeMetricFamily(
            "gateway_cache_bytes",
            "Estimated bytes of the read cache now.",
            cache.estimated_bytes if cache is not None else 0,
        )
        stream = self.stream
        yield GaugeMetricFamily(
            "gateway_engine_stream_up",
            "1 while the engine event stream is connected, else 0.",
            1 if stream is not None and stream.connected else 0,
        )
        yield GaugeMetricFamily(
            "gateway_engine_circuit_open",
            "1 while the engine circuit breaker fails calls at once (engine unreachable), else 0.",
            1 if self.circuit_open() else 0,
        )
        age = GaugeMetricFamily(
            "gateway_engine_stream_last_event_age_seconds", "Seconds since the last engine event arrived."
        )
        if stream is not None and stream.last_event_at is not None:
            age.add_metric([], time.monotonic() - stream.last_event_at)
        yield age


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the app's metrics in Prometheus' text format."""
    found: GatewayMetrics = request.app.state.metrics
    return Response(found.exposition(), media_type=CONTENT_TYPE_LATEST)


def metric_in(exposition: str, name: str, **labels: str) -> float:
    """The samples named ``name`` (with these label values, if given) summed over their other labels, read from
    ``GET /metrics``' text (tests, bench)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
    )


def engine_requests_in(exposition: str) -> int:
    """``gateway_engine_requests_total`` summed over its labels, read from ``GET /metrics``' text (tests, bench)."""
    return int(metric_in(exposition, ENGINE_REQUESTS + "_total"))
