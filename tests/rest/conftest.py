"""A gateway in its own process, in front of an embedded engine holding the example models, spoken to over HTTP.

Most tests share one engine and one gateway per module and keep out of each other's way by starting their own
process instances under a fresh correlation id (``Approvals.start``) and filtering by it. Tests that need another
configuration, or that stop the engine, get their own servers from ``gateway_factory``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.servers import EngineServer, GatewayServer, gateway_in_front_of


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory, shared_engine: EngineServer) -> Iterator[GatewayServer]:
    gateway = gateway_in_front_of(shared_engine.url, tmp_path_factory.mktemp("rest-gateway")).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def engine(shared_engine: EngineServer) -> EngineServer:
    return shared_engine


@pytest.fixture
def gateway(shared_gateway: GatewayServer) -> GatewayServer:
    return shared_gateway


@pytest.fixture
def api(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url + "/api/v1", timeout=60) as client:
        yield client


@dataclass
class Approvals:
    """ApprovalProcess instances of one test, under one correlation id (``params`` filters the list to them)."""

    engine: EngineServer
    correlation_id: str

    @property
    def params(self) -> dict[str, str]:
        return {"correlationId": self.correlation_id}

    def start(self, amounts: list[int]) -> list[str]:
        """One instance per amount (odd amounts are VIP customers); the ids of their first tasks, in order."""
        task_ids = []
        for amount in amounts:
            started = self.engine.start_instance(
                "ApprovalProcess",
                {"amount": amount, "customerType": "vip" if amount % 2 else "regular", "customerId": f"C-{amount}"},
                correlationId=self.correlation_id,
            )
            [task] = self.engine.user_tasks(processInstanceId=started["processInstanceId"])
            task_ids.append(str(task["flowNodeInstanceId"]))
        return task_ids


@pytest.fixture
def approvals(engine: EngineServer) -> Approvals:
    return Approvals(engine, f"rest-{uuid.uuid4()}")
