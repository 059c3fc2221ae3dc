"""One engine, one fault proxy in front of it and one gateway in front of the proxy, per module.

The gateway's read cache is off, so every read goes through the proxy (a rule hits exactly the request it names),
and its engine timeout is short (``TIMEOUT``) so that a slow engine costs a test seconds, not ten. Each test starts
with no rules (``proxy`` clears them) and its own ApprovalProcess instances (``approvals``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.proxy import FaultProxy
from tests.report import AttackReport
from tests.rest.conftest import Approvals
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

#: GATEWAY_ENGINE_TIMEOUT_SECONDS of the module's gateway.
TIMEOUT = 2


@pytest.fixture(scope="module")
def shared_proxy(shared_engine: EngineServer) -> Iterator[FaultProxy]:
    with FaultProxy(shared_engine.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory, shared_proxy: FaultProxy) -> Iterator[GatewayServer]:
    gateway = gateway_in_front_of(
        shared_proxy.url,
        tmp_path_factory.mktemp("faults-gateway"),
        GATEWAY_CACHE_TTL_SECONDS=0,
        GATEWAY_ENGINE_TIMEOUT_SECONDS=TIMEOUT,
    ).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def engine(shared_engine: EngineServer) -> EngineServer:
    return shared_engine


@pytest.fixture
def proxy(shared_proxy: FaultProxy, attack_report: AttackReport) -> Iterator[FaultProxy]:
    shared_proxy.clear()
    injected = shared_proxy.injected
    yield shared_proxy
    shared_proxy.clear()
    attack_report.add("faults injected", shared_proxy.injected - injected)


@pytest.fixture
def gateway(shared_gateway: GatewayServer) -> GatewayServer:
    return shared_gateway


@pytest.fixture
def api(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url + "/api/v1", timeout=60) as client:
        yield client


@pytest.fixture
def approvals(engine: EngineServer) -> Approvals:
    return Approvals(engine, f"faults-{uuid.uuid4()}")
