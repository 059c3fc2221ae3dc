"""A gateway in its own process, in front of an embedded engine holding the example models."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.servers import EngineServer, GatewayServer


@pytest.fixture
def gateway(gateway_factory: Callable[..., GatewayServer]) -> GatewayServer:
    return gateway_factory()


@pytest.fixture
def engine(approval_engine: EngineServer) -> EngineServer:
    return approval_engine
