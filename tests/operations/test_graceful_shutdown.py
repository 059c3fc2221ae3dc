"""SIGTERM while a batch finish runs: every item is either finished and answered, or never sent.

The gateway stops sending batch items the moment it is told to stop; the items already sent finish, the batch is
answered within the grace period (``GATEWAY_SHUTDOWN_GRACE_SECONDS``), and each item not sent says
``SHUTTING_DOWN``: a caller can send exactly those again, to another instance, and nothing is done twice.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import EXAMPLES, EngineFactory
from tests.servers import gateway_in_front_of, port_is_closed

ITEMS = 100
DEADLINE_SECONDS = 60.0


def test_sigterm_during_a_batch_finish_answers_every_item_and_sends_none_after_it(
    engine_server_factory: EngineFactory, tmp_path: Path
) -> None:
    engine = engine_server_factory()
    engine.deploy_file(EXAMPLES / "approval_process.bpmn")
    correlation = f"shutdown-{uuid.uuid4()}"
    for amount in range(ITEMS):
        token = {"amount": amount, "customerType": "regular"}
        engine.start_instance("ApprovalProcess", token, correlationId=correlation)
    task_ids = [str(task["flowNodeInstanceId"]) for task in engine.user_tasks(correlationId=correlation)]
    assert len(task_ids) == ITEMS
    # One item at a time, so the batch takes long enough (about a second) to be caught in the middle.
    gateway = gateway_in_front_of(
        engine.url, tmp_path / "gateway", GATEWAY_BATCH_CONCURRENCY=1, GATEWAY_SHUTDOWN_GRACE_SECONDS=20
    ).start()
    assert gateway.process is not None

    answer: dict[str, Any] = {}

    def send_batch() -> None:
        items = [{"id": task_id, "result": {"approved": True}} for task_id in task_ids]
        try:
            answer["response"] = httpx.post(
                gateway.url + "/api/v1/user-tasks/batch/finish", json={"items": items}, timeout=DEADLINE_SECONDS
            )
        except httpx.HTTPError as exc:  # pragma: no cover - the failure the test is about
            answer["error"] = exc

    sender = threading.Thread(target=send_batch)
    sender.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not _finished_at_engine(engine, correlation):  # the batch is under way
        assert time.monotonic() < deadline, "the batch never started"
        time.sleep(0.02)
    gateway.process.send_signal(signal.SIGTERM)
    sender.join(DEADLINE_SECONDS)
    # uvicorn ends by raising the signal it caught again, as a process killed by SIGTERM (status 143 in a shell)
    assert gateway.process.wait(DEADLINE_SECONDS) == -signal.SIGTERM
    assert port_is_closed(gateway.port)

    assert "error" not in answer, answer.get("error")
    response: httpx.Response = answer["response"]
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [item["id"] for item in results] == task_ids  # every item answered, in order
    finished = {item["id"] for item in results if item["status"] == 200}
    not_sent = {item["id"] for item in results if item["status"] == 503}
    assert finished | not_sent == set(task_ids)
    assert {item["problem"]["code"] for item in results if item["status"] == 503} <= {"SHUTTING_DOWN"}
    assert finished, "SIGTERM came before the first item"
    assert not_sent, "the batch was not caught in the middle"

    # What the engine says agrees with every answer: finished exactly when answered 200.
    assert _finished_at_engine(engine, correlation) == finished
    waiting = {
        str(task["flowNodeInstanceId"])
        for task in engine.user_tasks(correlationId=correlation)
        if task["flowNodeId"] == "approveOrder"  # not the tasks that the finished ones led to
    }
    assert waiting == not_sent
    gateway.stop()


def _finished_at_engine(engine: Any, correlation: str) -> set[str]:
    finished = engine.flow_nodes(correlationId=correlation, flowNodeType="bpmn:UserTask", state="finished")
    return {str(node["flowNodeInstanceId"]) for node in finished if node["flowNodeId"] == "approveOrder"}
