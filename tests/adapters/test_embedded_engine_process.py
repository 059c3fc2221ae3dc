"""With no engine URL the gateway starts the embedded engine itself, and never leaves it behind."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.servers import GatewayServer, free_port, gateway_with_embedded_engine, port_is_closed


def test_the_embedded_engine_stops_when_the_gateway_is_killed(tmp_path: Path) -> None:
    engine_port = free_port()
    gateway = gateway_with_embedded_engine(tmp_path, engine_port=engine_port).start()
    assert httpx.get(f"http://127.0.0.1:{engine_port}/atlas_engine/api/v1/info").status_code == 200
    gateway.kill()  # SIGKILL: no lifespan shutdown runs
    for _attempt in range(100):  # the engine checks its parent once a second
        if port_is_closed(engine_port):
            break
        time.sleep(0.1)
    assert port_is_closed(engine_port)


def test_a_taken_engine_port_is_a_clear_start_error(tmp_path: Path) -> None:
    gateway = GatewayServer(engine_url=None, workdir=tmp_path / "a", env={"GATEWAY_EMBEDDED_ENGINE_PORT": "0"})
    first = gateway.start()
    taken = int(httpx.get(first.url + "/healthz").json()["engineUrl"].rsplit(":", 1)[1])
    second = GatewayServer(engine_url=None, workdir=tmp_path / "b", env={"GATEWAY_EMBEDDED_ENGINE_PORT": str(taken)})
    try:
        with pytest.raises(RuntimeError, match=f"Port {taken} is taken"):
            second.start()
    finally:
        second.stop()
        first.stop()
