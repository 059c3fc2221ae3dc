"""Prometheus metrics of one gateway app, served unauthenticated at ``GET /metrics`` (text format).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (not the process-wide one), so several apps in
one process (tests) count apart.

- ``gateway_engine_requests_total{method}``: HTTP requests sent to the engine, retries included, by HTTP method;
  counted by the engine client's request hook (:func:`gateway.adapters.client_engine.request_counter`).
- ``gateway_engine_events_total``, ``gateway_engine_stream_connects_total``, ``gateway_engine_stream_gaps_total``:
  engine events heard on the one event stream, its (re)connects, and the times it was interrupted (each one told
  to every live subscriber as a gap).
- ``gateway_live_subscriptions``, ``gateway_live_lists``: live subscriptions held now (events, lists, SSE), and
  the distinct live lists they share (each refreshed once per change, whatever its number of subscribers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

ENGINE_REQUESTS = "gateway_engine_requests"

#: HTTP methods as the engine request counter labels them (anything else: OTHER, so the label stays bounded).
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.engine_requests = Counter(
            ENGINE_REQUESTS,
            "HTTP requests sent to the engine, retries included.",
            ["method"],
            registry=self.registry,
        )
        self._live = _LiveCollector(lambda: LiveFigures(0, 0, 0, 0, 0))
        self.registry.register(self._live)

    def engine_request(self, method: str) -> None:
        """One HTTP request sent to the engine (the engine client's request hook calls this)."""
        self.engine_requests.labels(method=method if method in _METHODS else "OTHER").inc()

    def watch_live(self, read: Callable[[], LiveFigures]) -> None:
        """Expose these live figures, read at each scrape (the hub keeps them; nothing is counted twice)."""
        self._live.read = read

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


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the app's metrics in Prometheus' text format."""
    found: GatewayMetrics = request.app.state.metrics
    return Response(found.exposition(), media_type=CONTENT_TYPE_LATEST)


def metric_in(exposition: str, name: str) -> float:
    """The samples named ``name`` summed over their labels, read from ``GET /metrics``' text (tests, bench)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    )


def engine_requests_in(exposition: str) -> int:
    """``gateway_engine_requests_total`` summed over its labels, read from ``GET /metrics``' text (tests, bench)."""
    return int(metric_in(exposition, ENGINE_REQUESTS + "_total"))
