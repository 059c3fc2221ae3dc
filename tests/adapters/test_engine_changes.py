"""The one engine event stream of a gateway process, against a real engine: caches kept true, gaps told.

Two gateway processes in front of one engine, each with a read cache that would keep a task for a minute: a
task finished through A disappears from B's next read once B has heard the engine's event, not when the TTL ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.adapters.engine_changes import change_from_event
from gateway.core.changes import ChangeKind
from gateway.engine import UserTaskEvent
from gateway.metrics import metric_in
from tests.servers import EngineServer, GatewayServer

LIST = "{ userTasks { nodes { id } } }"
FINISH = "mutation($id: ID!) { finishUserTask(id: $id, result: {approved: true}) { __typename } }"


def listed(gateway: GatewayServer) -> list[str]:
    return [node["id"] for node in gateway.graphql(LIST)["data"]["userTasks"]["nodes"]]


def metric(gateway: GatewayServer, name: str) -> float:
    return metric_in(httpx.get(gateway.url + "/metrics").text, name)


def connected(gateway: GatewayServer) -> bool:
    return metric(gateway, "gateway_engine_stream_connects_total") >= 1


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.05)


def start_approval(engine: EngineServer, amount: int = 5) -> str:
    engine.start_instance("ApprovalProcess", {"amount": amount, "customerType": "regular", "customerId": "C"})
    return str(engine.user_tasks(processModelId="ApprovalProcess")[-1]["flowNodeInstanceId"])


def test_a_task_finished_through_one_gateway_leaves_the_cached_list_of_another(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    a = gateway_factory(GATEWAY_CACHE_TTL_SECONDS=60)
    b = gateway_factory(GATEWAY_CACHE_TTL_SECONDS=60)
    eventually(lambda: connected(a) and connected(b))
    task_id = start_approval(approval_engine)
    b.engine_events_settled()
    assert listed(b) == [task_id]
    calls = b.engine_calls()
    assert listed(b) == [task_id]
    assert b.engine_calls() == calls  # B answers from its cache now

    events_before = metric(b, "gateway_engine_events_total")
    assert a.graphql(FINISH, {"id": task_id})["data"]["finishUserTask"]["__typename"] == "FinishedUserTask"
    eventually(lambda: metric(b, "gateway_engine_events_total") > events_before)
    assert task_id not in listed(b)


def test_an_interrupted_engine_stream_reconnects_and_counts_the_gap(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory()
    eventually(lambda: connected(gateway))
    approval_engine.restart()
    eventually(lambda: metric(gateway, "gateway_engine_stream_gaps_total") == 1, seconds=30)
    assert metric(gateway, "gateway_engine_stream_connects_total") == 2
    task_id = start_approval(approval_engine)  # and it hears events again
    eventually(lambda: task_id in listed(gateway))


def event(name: str, **body: Any) -> UserTaskEvent:
    return UserTaskEvent(
        name=name,
        flow_node_instance_id=body.get("flowNodeInstanceId"),
        process_instance_id=body.get("processInstanceId"),
        flow_node_lane=body.get("flowNodeLane"),
        raw=body,
    )


def test_engine_notifications_become_changes() -> None:
    reserved = change_from_event(
        event("user_task_reserved", flowNodeInstanceId="t1", processInstanceId="p1", flowNodeLane="Approver")
    )
    assert reserved is not None
    assert (reserved.kind, reserved.task_id, reserved.lane) == (ChangeKind.RESERVED, "t1", "Approver")
    terminated = change_from_event(event("process_terminated", processInstanceId="p1"))
    assert terminated is not None
    assert (terminated.kind, terminated.task_id, terminated.process_instance_id) == (ChangeKind.TERMINATED, None, "p1")
    assert change_from_event(event("process_started", processInstanceId="p1")) is None
    assert change_from_event(event("user_task_waiting")) is None  # no task id: nothing to show
