"""Health for operators and load balancers: ``/livez``, ``/readyz`` and the older ``/healthz``. Unauthenticated.

- ``GET /livez``: 200 while the process serves requests; it asks nothing of anyone. A failing liveness probe means
  "restart me", so nothing outside the process may fail it.
- ``GET /readyz``: 200 when this instance can do its work now: the engine answers, the authority's discovery
  document answers (tokens can be verified), the engine event stream is connected (caches and live lists are
  true), and Redis answers when ``GATEWAY_REDIS_URL`` is set. Otherwise 503, naming each missing part in
  ``unavailable`` with a short reason; also 503 ``shuttingDown`` from the moment a SIGTERM arrives, so a load
  balancer stops sending before the listener closes.
- ``GET /healthz``: the first wave's check (200 ``ok``, 503 while the embedded engine restarts); kept for the
  setups that use it.

Readiness is cheap however often it is asked: the checks run concurrently, each bounded by
:data:`CHECK_TIMEOUT_SECONDS`, and their result is shared for :data:`READY_FOR_SECONDS` (concurrent probes wait for
the one running check). A probe never costs more than one engine call, one authority call and one Redis ping a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .adapters.embedded_engine import Supervisor
from .record import record_of

CHECK_TIMEOUT_SECONDS = 2.0
#: The code of a not-ready answer in the access log and in ``gateway_requests_total``.
NOT_READY = "NOT_READY"
READY_FOR_SECONDS = 1.0

Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Readiness:
    unavailable: dict[str, str]  # part -> why

    @property
    def ready(self) -> bool:
        return not self.unavailable


class ReadinessProbe:
    """The named checks of one app; :meth:`result` runs them at most once per :data:`READY_FOR_SECONDS`."""

    def __init__(self, checks: dict[str, Check], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._checks = checks
        self._clock = clock
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Future[Readiness] | None = None
        #: Set when the gateway starts shutting down: from then on it is never ready again.
        self.shutting_down = False

    async def result(self) -> Readiness:
        if self.shutting_down:
            return Readiness({"shuttingDown": "The gateway is shutting down."})
        if self._last is not None and self._clock() - self._last[0] < READY_FOR_SECONDS:
            return self._last[1]
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
            self._running.add_done_callback(lambda _: setattr(self, "_running", None))
        return await asyncio.shield(self._running)

    async def _run(self) -> Readiness:
        names = list(self._checks)
        outcomes = await asyncio.gather(*(_bounded(self._checks[name]) for name in names))
        readiness = Readiness({name: why for name, why in zip(names, outcomes, strict=True) if why is not None})
        self._last = (self._clock(), readiness)
        return readiness


async def _bounded(check: Check) -> str | None:
    """None when ``check`` passes within the bound, else why not (one line; no secrets: messages are ours)."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # any failure is "not ready", said in a line
        return _reason(exc)
    return None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


async def livez(request: Request) -> Response:
    return JSONResponse({"status": "live"}, headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    probe: ReadinessProbe = request.app.state.readiness
    readiness = await probe.result()
    headers = {"Cache-Control": "no-store"}
    if readiness.ready:
        return JSONResponse({"status": "ready"}, headers=headers)
    record = record_of(request)
    if record is not None:
        record.note(code=NOT_READY)  # an answer, not a failure: not INTERNAL in the access log and the metrics
    body: dict[str, Any] = {
        "status": "not ready",
        "unavailable": sorted(readiness.unavailable),
        "reasons": readiness.unavailable,
    }
    return JSONResponse(body, status_code=503, headers=headers)


async def healthz(request: Request) -> Response:
    """200 ``ok`` while the gateway can serve; 503 ``degraded`` while the embedded engine is down (restarting).

    For the embedded engine the supervisor knows its state, so a health check costs no engine call. A configured
    engine is not asked: ``/readyz`` is the check that asks.
    """
    state = request.app.state
    body: dict[str, object] = {"status": "ok", "engineUrl": state.engine_url}
    supervisor: Supervisor | None = state.supervisor
    if supervisor is None:
        return JSONResponse(body)
    engine = supervisor.status()
    body["engine"] = {"kind": "embedded", **engine.as_json()}
    if engine.up:
        return JSONResponse(body)
    record = record_of(request)
    if record is not None:
        record.note(code=NOT_READY)
    body["status"] = "degraded"
    body["unavailable"] = ["engine"]
    return JSONResponse(body, status_code=503)
