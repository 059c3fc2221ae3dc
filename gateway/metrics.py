"""Prometheus metrics of one gateway app, served unauthenticated at ``GET /metrics`` (text format).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (not the process-wide one), so several apps in
one process (tests) count apart.

- ``gateway_engine_requests_total{method}``: HTTP requests sent to the engine, retries included, by HTTP method;
  counted by the engine client's request hook (:func:`gateway.adapters.client_engine.request_counter`).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
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

    def engine_request(self, method: str) -> None:
        """One HTTP request sent to the engine (the engine client's request hook calls this)."""
        self.engine_requests.labels(method=method if method in _METHODS else "OTHER").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the app's metrics in Prometheus' text format."""
    found: GatewayMetrics = request.app.state.metrics
    return Response(found.exposition(), media_type=CONTENT_TYPE_LATEST)


def engine_requests_in(exposition: str) -> int:
    """``gateway_engine_requests_total`` summed over its labels, read from ``GET /metrics``' text (tests, bench)."""
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == ENGINE_REQUESTS + "_total"
        )
    )
