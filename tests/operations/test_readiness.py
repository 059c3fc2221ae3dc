"""``/livez`` and ``/readyz``: what a load balancer and an orchestrator ask, and what each answer means.

``/livez`` is 200 while the process serves (nothing outside it can fail it); ``/readyz`` is 200 only when the
engine, the authority and the engine event stream are there (and Redis, when configured), else 503 naming what is
missing. Probes are cheap: concurrent probes share one check, and a result is reused for a second.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.health import READY_FOR_SECONDS, ReadinessProbe
from tests.conftest import EngineFactory
from tests.servers import GatewayServer, free_port, gateway_in_front_of, gateway_with_embedded_engine

DEADLINE_SECONDS = 30.0


def wait_for(gateway: GatewayServer, status: int) -> dict[str, Any]:
    """Poll ``/readyz`` until it answers ``status`` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        response = httpx.get(gateway.url + "/readyz", timeout=10)
        if response.status_code == status:
            body: dict[str, Any] = response.json()
            return body
        assert time.monotonic() < deadline, f"/readyz never answered {status}: {response.text}"
        time.sleep(0.1)


def test_ready_when_engine_authority_and_event_stream_are_there_and_not_while_the_engine_is_gone(
    engine_server_factory: EngineFactory, tmp_path: Path
) -> None:
    engine = engine_server_factory()
    gateway = gateway_in_front_of(engine.url, tmp_path / "gateway").start()
    try:
        assert wait_for(gateway, 200) == {"status": "ready"}
        live = httpx.get(gateway.url + "/livez")
        assert (live.status_code, live.json()) == (200, {"status": "live"})

        engine.stop()
        body = wait_for(gateway, 503)
        assert body["status"] == "not ready"
        assert {"engine", "authority"} <= set(body["unavailable"])
        assert all(body["reasons"][part] for part in body["unavailable"])  # each one says why
        assert httpx.get(gateway.url + "/livez").status_code == 200  # alive: no reason to restart it
        readyz = [
            line
            for line in httpx.get(gateway.url + "/metrics").text.splitlines()
            if line.startswith("gateway_requests_total{") and 'operation="readyz"' in line
        ]
        assert any('code="NOT_READY"' in line for line in readyz), readyz  # an answer, not a failure
        assert not any('code="INTERNAL"' in line for line in readyz), readyz

        engine.start()  # same port: the gateway recovers by itself, stream included
        assert wait_for(gateway, 200) == {"status": "ready"}
    finally:
        gateway.stop()


def test_an_unreachable_redis_makes_the_gateway_not_ready(engine_server_factory: EngineFactory, tmp_path: Path) -> None:
    engine = engine_server_factory()
    closed_port = free_port()  # bound and released: nothing listens there
    gateway = gateway_in_front_of(
        engine.url, tmp_path / "gateway", GATEWAY_REDIS_URL=f"redis://127.0.0.1:{closed_port}/0"
    ).start()
    try:
        body = wait_for(gateway, 503)
        assert body["unavailable"] == ["redis"]
    finally:
        gateway.stop()


# -- the probe itself: cost in checks, not seconds ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_probes_share_one_check_and_a_result_is_reused_for_a_second() -> None:
    runs = {"engine": 0}
    release = asyncio.Event()

    async def engine() -> None:
        runs["engine"] += 1
        await release.wait()

    clock = Clock()
    probe = ReadinessProbe({"engine": engine}, clock=clock)
    probes = [asyncio.ensure_future(probe.result()) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    assert all(result.ready for result in await asyncio.gather(*probes))
    assert runs["engine"] == 1

    clock.now += READY_FOR_SECONDS / 2
    await probe.result()
    assert runs["engine"] == 1  # reused
    clock.now += READY_FOR_SECONDS
    await probe.result()
    assert runs["engine"] == 2  # asked again


async def test_a_failing_or_hanging_check_names_its_part_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.health.CHECK_TIMEOUT_SECONDS", 0.05)

    async def fine() -> None:
        return None

    async def broken() -> None:
        raise RuntimeError("The engine event stream is not connected.")

    async def hanging() -> None:
        await asyncio.Event().wait()

    result = await ReadinessProbe({"engine": fine, "eventStream": broken, "redis": hanging}).result()
    assert not result.ready
    assert result.unavailable == {
        "eventStream": "The engine event stream is not connected.",
        "redis": "no answer within 0.05 s",
    }


async def test_once_shutting_down_it_is_never_ready_again() -> None:
    async def fine() -> None:
        return None

    probe = ReadinessProbe({"engine": fine})
    assert (await probe.result()).ready
    probe.shutting_down = True
    assert (await probe.result()).unavailable == {"shuttingDown": "The gateway is shutting down."}


def test_a_gateway_starting_its_embedded_engine_is_ready_without_tripping_the_circuit(tmp_path: Path) -> None:
    gateway = gateway_with_embedded_engine(tmp_path).start()
    try:
        assert wait_for(gateway, 200) == {"status": "ready"}
        assert "circuit open" not in gateway.log()  # an engine still starting is no outage
    finally:
        gateway.stop()
