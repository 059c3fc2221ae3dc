"""A gateway in its own process, in front of an embedded engine holding the example models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from tests.servers import EngineServer, GatewayServer


@pytest.fixture
def gateway_factory(tmp_path: Path, approval_engine: EngineServer) -> Iterator[Callable[..., GatewayServer]]:
    started: list[GatewayServer] = []

    def factory(**env: Any) -> GatewayServer:
        gateway = GatewayServer(
            engine_url=approval_engine.url,
            workdir=tmp_path / f"gateway-{len(started)}",
            env={"GATEWAY_ALLOW_ANONYMOUS": "true", **{key: str(value) for key, value in env.items()}},
        ).start()
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(gateway_factory: Callable[..., GatewayServer]) -> GatewayServer:
    return gateway_factory()


@pytest.fixture
def engine(approval_engine: EngineServer) -> EngineServer:
    return approval_engine


__all__ = ["EXAMPLES"]
