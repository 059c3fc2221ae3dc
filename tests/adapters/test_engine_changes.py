"""The one engine event stream of a gateway process, against a real engine: caches kept true, gaps told.

Two gateway processes in front of one engine, each with a read cache that would keep a task for a minute: a
task finished through A disappears from B's next read once B has heard the engine's event, not when the TTL ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from gateway.adapters.engine_changes import change_from_event
from gateway.core.changes import ChangeKind
from gateway.engine import UserTaskEvent
from tests.embedded_engine.test_waiting_events import chain, studio_model, timer
from tests.servers import EngineServer, GatewayServer, poll

LIST = "{ userTasks { nodes { id } } }"
FINISH = "mutation($id: ID!) { finishUserTask(id: $id, result: {approved: true}) { __typename } }"


def listed(gateway: GatewayServer) -> list[str]:
    return [node["id"] for node in gateway.graphql(LIST)["data"]["userTasks"]["nodes"]]


def connected(gateway: GatewayServer) -> bool:
    return gateway.metric("gateway_engine_stream_connects_total") >= 1


def start_approval(engine: EngineServer, amount: int = 5) -> str:
    engine.start_instance("ApprovalProcess", {"amount": amount, "customerType": "regular", "customerId": "C"})
    return str(engine.user_tasks(processModelId="ApprovalProcess")[-1]["flowNodeInstanceId"])


def test_a_task_finished_through_one_gateway_leaves_the_cached_list_of_another(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    a = gateway_factory(GATEWAY_CACHE_TTL_SECONDS=60)
    b = gateway_factory(GATEWAY_CACHE_TTL_SECONDS=60)
    poll(lambda: connected(a) and connected(b), within=15)
    task_id = start_approval(approval_engine)
    b.engine_events_settled()
    assert listed(b) == [task_id]
    calls = b.engine_calls()
    assert listed(b) == [task_id]
    assert b.engine_calls() == calls  # B answers from its cache now

    events_before = b.metric("gateway_engine_events_total")
    assert a.graphql(FINISH, {"id": task_id})["data"]["finishUserTask"]["__typename"] == "FinishedUserTask"
    poll(lambda: b.metric("gateway_engine_events_total") > events_before, within=15)
    assert task_id not in listed(b)


def test_an_interrupted_engine_stream_reconnects_and_counts_the_gap(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory()
    poll(lambda: connected(gateway), within=15)
    approval_engine.restart()
    poll(lambda: gateway.metric("gateway_engine_stream_gaps_total") == 1, within=30)
    assert gateway.metric("gateway_engine_stream_connects_total") == 2
    task_id = start_approval(approval_engine)  # and it hears events again
    poll(lambda: task_id in listed(gateway), within=15)


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


def test_a_user_task_a_boundary_event_cancelled_becomes_a_terminated_change() -> None:
    cancelled = change_from_event(
        event("activity_canceled", flowNodeInstanceId="t1", processInstanceId="p1", flowNodeType="bpmn:UserTask")
    )
    assert cancelled is not None
    assert (cancelled.kind, cancelled.task_id) == (ChangeKind.TERMINATED, "t1")
    manual = event("activity_canceled", flowNodeInstanceId="t2", processInstanceId="p1", flowNodeType="bpmn:ManualTask")
    assert change_from_event(manual) is None  # no task list shows a manual task


ESCALATION = studio_model(
    "Escalation",
    '<bpmn:startEvent id="Start" /><bpmn:userTask id="Approve" name="Approve" />'
    f'<bpmn:boundaryEvent id="TooLate" attachedToRef="Approve">{timer("timeDuration", "P1D")}</bpmn:boundaryEvent>'
    '<bpmn:endEvent id="Approved" /><bpmn:endEvent id="Escalated" />'
    + chain("Start", "Approve", "Approved")
    + chain("TooLate", "Escalated"),
)


def test_a_task_a_boundary_timer_cancels_leaves_the_cached_list(
    engine_server: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    engine_server.deploy(ESCALATION)
    gateway = gateway_factory(GATEWAY_CACHE_TTL_SECONDS=60)
    poll(lambda: connected(gateway), within=15)
    started = engine_server.start_instance("Escalation")["processInstanceId"]
    (task,) = engine_server.user_tasks(processInstanceId=started)
    gateway.engine_events_settled()
    assert listed(gateway) == [task["flowNodeInstanceId"]]
    (boundary,) = httpx.get(
        engine_server.api + "/flow_node_instances",
        params={"processInstanceId": started, "flowNodeType": "bpmn:BoundaryEvent", "state": "suspended"},
        headers=engine_server.headers(),
    ).json()["flowNodeInstances"]

    fired = httpx.post(
        f"{engine_server.api}/timer/{boundary['flowNodeInstanceId']}/trigger", headers=engine_server.headers()
    )

    assert fired.status_code == 204
    poll(lambda: listed(gateway) == [], within=15)
