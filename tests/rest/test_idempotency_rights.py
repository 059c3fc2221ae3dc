"""An Idempotency-Key is bound to the caller's rights, not only to the user id.

Alice finishes a task with key K. A token for the same ``sub`` that grants less (no Approver lane claim) sends K
again: it must not get Alice's kept answer (the task's data) from the store. The request runs anew, and the engine
decides: that token cannot see the task, so the answer is a 404. A refreshed token with the same rights replays.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, EngineFactory
from tests.report import AttackReport
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

ALICE = {"client_id": "alice", "client_secret": "alice-secret", "sub": "alice", "scope": "engine_read engine_write"}
CLIENTS = [
    {**ALICE, "claims": {"Approver": "true"}},  # a lane claim: named after the lane
    # the same user, another client: no lane claim
    {**ALICE, "client_id": "alice-without-lanes", "client_secret": "other-secret", "claims": {}},
    {"client_id": "admin", "client_secret": "admin-secret", "scope": "engine_read engine_write engine_admin"},
]


@pytest.fixture
def engine(engine_server_factory: EngineFactory) -> EngineServer:
    engine = engine_server_factory(anonymous=False, clients=CLIENTS)
    admin = engine.token("admin", "admin-secret")
    engine.deploy((EXAMPLES / "approval_process.bpmn").read_text(encoding="utf-8"), token=admin)
    return engine


@pytest.fixture
def gateway(engine: EngineServer, tmp_path: Path) -> Iterator[GatewayServer]:
    gateway = gateway_in_front_of(engine.url, tmp_path / "gateway", GATEWAY_ALLOW_ANONYMOUS="false").start()
    yield gateway
    gateway.stop()


def test_a_replay_never_serves_a_token_that_grants_less(
    engine: EngineServer, gateway: GatewayServer, attack_report: AttackReport
) -> None:
    alice = engine.token("alice", "alice-secret")
    started = engine.start_instance("ApprovalProcess", {"amount": 5}, token=alice)
    [task] = engine.user_tasks(processInstanceId=started["processInstanceId"], token=alice)
    path = f"/api/v1/user-tasks/{task['flowNodeInstanceId']}/finish"
    body = {"result": {"approved": True}}
    key = {"Idempotency-Key": str(uuid.uuid4())}

    def finish(bearer: str) -> httpx.Response:
        return httpx.post(gateway.url + path, json=body, headers={**key, "Authorization": f"Bearer {bearer}"})

    first = finish(alice)
    assert first.status_code == 200, first.text

    lesser = finish(engine.token("alice-without-lanes", "other-secret"))
    attack_report.add("inputs tried")
    attack_report.add("cross-user leaks", lesser.status_code != 404 or "approved" in lesser.text)
    assert lesser.status_code == 404, lesser.text  # runs anew; the engine shows this token no such task
    assert "Idempotent-Replayed" not in lesser.headers
    assert "approved" not in lesser.text  # none of the task's data

    refreshed = finish(engine.token("alice", "alice-secret"))  # a new token, the same rights
    assert refreshed.status_code == 200
    assert refreshed.headers["Idempotent-Replayed"] == "true"
    assert refreshed.content == first.content
