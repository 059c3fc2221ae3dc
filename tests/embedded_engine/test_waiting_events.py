"""What a process waits for besides user tasks and workers, over real HTTP: manual and untyped tasks, messages,
signals and timers; and what the engine refuses to deploy because it could not run it.

The models are written as 5Minds Studio writes them: ``bpmn:message``/``bpmn:signal`` elements referenced by
``messageRef``/``signalRef``, timers as ``bpmn:timeDuration xsi:type="bpmn:tFormalExpression"``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import httpx
import pytest

from tests.servers import EngineServer, poll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """One engine for the module: each test deploys models (and sends messages) under names of its own."""
    server = EngineServer(data_dir=tmp_path_factory.mktemp("engine")).start()
    yield server
    server.stop()


HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="{definitions}" '
    'targetNamespace="http://bpmn.io/schema/bpmn" exporter="5Minds Studio" exporterVersion="1">\n'
)


def studio_model(process_id: str, body: str, extra: str = "") -> str:
    """A definitions document with one executable process; ``extra`` holds bpmn:message and bpmn:signal elements."""
    return (
        HEADER.replace("{definitions}", f"Definition_{process_id}")
        + f'<bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">\n{body}\n</bpmn:process>\n'
        + extra
        + "</bpmn:definitions>\n"
    )


def chain(*nodes: str) -> str:
    """Sequence flows through the given node ids, in order."""
    return "".join(
        f'<bpmn:sequenceFlow id="Flow_{a}_{b}" sourceRef="{a}" targetRef="{b}" />' for a, b in pairwise(nodes)
    )


def timer(kind: str, value: str) -> str:
    return (
        f'<bpmn:timerEventDefinition id="TimerDef_{abs(hash(value))}">'
        f'<bpmn:{kind} xsi:type="bpmn:tFormalExpression">{value}</bpmn:{kind}>'
        "</bpmn:timerEventDefinition>"
    )


def message(name: str) -> str:
    return f'<bpmn:message id="Message_Paid" name="{name}" />'


SIGNAL = '<bpmn:signal id="Signal_Stop" name="StopEverything" />'


def catch_message(node_id: str) -> str:
    return (
        f'<bpmn:intermediateCatchEvent id="{node_id}" name="Wait for payment">'
        f'<bpmn:messageEventDefinition id="Def_{node_id}" messageRef="Message_Paid" /></bpmn:intermediateCatchEvent>'
    )


def instance(engine: EngineServer, process_instance_id: str) -> dict[str, Any]:
    return engine.process_instance(process_instance_id)


def flow_nodes(engine: EngineServer, **params: Any) -> list[dict[str, Any]]:
    return engine.flow_nodes(**params)


def waiting(engine: EngineServer, process_instance_id: str, flow_node_type: str) -> dict[str, Any]:
    (node,) = flow_nodes(engine, processInstanceId=process_instance_id, flowNodeType=flow_node_type, state="suspended")
    return node


def state_of(engine: EngineServer, process_instance_id: str) -> str:
    return str(instance(engine, process_instance_id)["state"])


def post(engine: EngineServer, path: str, body: Any = None, **params: str) -> httpx.Response:
    return httpx.post(engine.api + path, json=body, params=params, headers=engine.headers())


def put(engine: EngineServer, path: str) -> httpx.Response:
    return httpx.put(engine.api + path, headers=engine.headers())


# -- manual and untyped tasks --------------------------------------------------------------------------------


def test_a_manual_and_an_untyped_task_wait_until_they_are_finished(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "Chores",
            '<bpmn:startEvent id="Start" /><bpmn:manualTask id="Sweep" name="Sweep the floor" />'
            '<bpmn:task id="Check" name="Check" /><bpmn:endEvent id="Done" />'
            + chain("Start", "Sweep", "Check", "Done"),
        )
    )
    started = engine.start_instance("Chores", {"room": "kitchen"})["processInstanceId"]

    manual = waiting(engine, started, "bpmn:ManualTask")
    assert manual["flowNodeName"] == "Sweep the floor"
    # the untyped-task route does not finish a manual task, nor the user-task route
    assert put(engine, f"/untyped_tasks/{manual['flowNodeInstanceId']}/finish").status_code == 404
    assert put(engine, f"/user_tasks/{manual['flowNodeInstanceId']}/finish").status_code == 404
    assert put(engine, f"/manual_tasks/{manual['flowNodeInstanceId']}/finish").status_code == 204
    assert put(engine, f"/manual_tasks/{manual['flowNodeInstanceId']}/finish").status_code == 404

    untyped = waiting(engine, started, "bpmn:Task")
    assert state_of(engine, started) == "running"
    assert put(engine, f"/empty_activities/{untyped['flowNodeInstanceId']}/finish").status_code == 204

    ended = instance(engine, started)
    assert ended["state"] == "finished"


def test_the_untyped_task_route_finishes_an_untyped_task(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "Untyped", '<bpmn:startEvent id="S" /><bpmn:task id="T" /><bpmn:endEvent id="E" />' + chain("S", "T", "E")
        )
    )
    started = engine.start_instance("Untyped")["processInstanceId"]
    task = waiting(engine, started, "bpmn:Task")
    assert put(engine, f"/untyped_tasks/{task['flowNodeInstanceId']}/finish").status_code == 204
    assert state_of(engine, started) == "finished"


# -- messages and signals ------------------------------------------------------------------------------------


def deploy_payment(engine: EngineServer, message_name: str) -> str:
    """A model that waits for the message ``message_name``; returns its process model id."""
    process_id = f"Payment_{message_name}"
    engine.deploy(
        studio_model(
            process_id,
            '<bpmn:startEvent id="Start" />'
            + catch_message("Paid")
            + '<bpmn:endEvent id="End" />'
            + chain("Start", "Paid", "End"),
            message(message_name),
        )
    )
    return process_id


def test_a_message_continues_every_instance_waiting_for_it_and_its_payload_becomes_the_token(
    engine: EngineServer,
) -> None:
    payment = deploy_payment(engine, "InvoicePaid")
    first = engine.start_instance(payment, {"order": 1})["processInstanceId"]
    second = engine.start_instance(payment, {"order": 2})["processInstanceId"]
    assert waiting(engine, first, "bpmn:IntermediateCatchEvent")["flowNodeId"] == "Paid"

    # the official Python client wraps the payload as {"payload": ...}; the TypeScript client sends it bare
    assert post(engine, "/messages/InvoicePaid/trigger", {"payload": {"amount": 12}}).status_code == 204

    for started in (first, second):
        ended = instance(engine, started)
        assert ended["state"] == "finished"
    (paid,) = flow_nodes(engine, processInstanceId=first, flowNodeId="Paid")
    assert paid["state"] == "finished"
    assert paid["endToken"] == {"amount": 12}


def test_a_message_aimed_at_one_instance_leaves_the_others_waiting(engine: EngineServer) -> None:
    payment = deploy_payment(engine, "RentPaid")
    first = engine.start_instance(payment)["processInstanceId"]
    second = engine.start_instance(payment)["processInstanceId"]

    response = post(engine, "/messages/RentPaid/trigger", {"amount": 5}, process_instance_id=second)

    assert response.status_code == 204
    assert (state_of(engine, first), state_of(engine, second)) == ("running", "finished")
    (paid,) = flow_nodes(engine, processInstanceId=second, flowNodeId="Paid")
    assert paid["endToken"] == {"amount": 5}


def test_a_message_for_an_unknown_or_ended_instance_is_refused(engine: EngineServer) -> None:
    payment = deploy_payment(engine, "FeePaid")
    started = engine.start_instance(payment)["processInstanceId"]
    assert post(engine, "/messages/FeePaid/trigger", processInstanceId="no-such-instance").status_code == 404
    assert post(engine, "/messages/FeePaid/trigger", process_instance_id=started).status_code == 204
    assert post(engine, "/messages/FeePaid/trigger", process_instance_id=started).status_code == 409
    # nobody waiting is no error: the message is gone, as on the real engine
    assert post(engine, "/messages/NobodyListens/trigger", {"x": 1}).status_code == 204


def test_a_message_start_event_starts_an_instance_with_the_payload_as_its_token(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "StartedByPayment",
            '<bpmn:startEvent id="OnPaid" name="Order paid">'
            '<bpmn:messageEventDefinition id="Def_OnPaid" messageRef="Message_Paid" /></bpmn:startEvent>'
            '<bpmn:userTask id="Ship" name="Ship the order" /><bpmn:endEvent id="End" />'
            + chain("OnPaid", "Ship", "End"),
            message("OrderPaid"),
        )
    )

    response = post(engine, "/messages/OrderPaid/trigger", {"order": 7}, custom_correlation_id="order-7")

    assert response.status_code == 204
    (task,) = engine.user_tasks(processModelId="StartedByPayment")
    assert task["correlationId"] == "order-7"
    assert task["startToken"] == {"order": 7}


def test_a_signal_reaches_every_waiting_instance_and_boundary_signals_interrupt(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "Stoppable",
            '<bpmn:startEvent id="Start" /><bpmn:userTask id="Work" name="Work" />'
            '<bpmn:boundaryEvent id="Stopped" attachedToRef="Work">'
            '<bpmn:signalEventDefinition id="Def_Stopped" signalRef="Signal_Stop" /></bpmn:boundaryEvent>'
            '<bpmn:endEvent id="Done" /><bpmn:endEvent id="Aborted" />'
            + chain("Start", "Work", "Done")
            + chain("Stopped", "Aborted"),
            SIGNAL,
        )
    )
    started = [engine.start_instance("Stoppable")["processInstanceId"] for _ in range(3)]

    assert post(engine, "/signals/StopEverything/trigger").status_code == 204

    for process_instance_id in started:
        ended = instance(engine, process_instance_id)
        assert (ended["state"], ended.get("endEventId")) in {("finished", "Aborted"), ("finished", None)}
        (work,) = flow_nodes(engine, processInstanceId=process_instance_id, flowNodeId="Work")
        assert work["state"] == "canceled"
    assert engine.user_tasks(processModelId="Stoppable") == []


def test_a_message_thrown_by_one_instance_continues_another(engine: EngineServer) -> None:
    payment = deploy_payment(engine, "CashPaid")
    engine.deploy(
        studio_model(
            "Cashier",
            '<bpmn:startEvent id="Start" /><bpmn:intermediateThrowEvent id="Announce" name="Announce payment">'
            '<bpmn:messageEventDefinition id="Def_Announce" messageRef="Message_Paid" /></bpmn:intermediateThrowEvent>'
            '<bpmn:endEvent id="End" />' + chain("Start", "Announce", "End"),
            message("CashPaid"),
        )
    )
    waiting_for_it = engine.start_instance(payment)["processInstanceId"]

    engine.start_instance("Cashier", {"paidBy": "cashier"})

    poll(lambda: state_of(engine, waiting_for_it) == "finished")
    (paid,) = flow_nodes(engine, processInstanceId=waiting_for_it, flowNodeId="Paid")
    assert paid["endToken"] == {"paidBy": "cashier"}


# -- timers --------------------------------------------------------------------------------------------------


def test_an_intermediate_timer_fires_and_the_instance_runs_on(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "Pause",
            f'<bpmn:startEvent id="Start" /><bpmn:intermediateCatchEvent id="Wait" name="Wait a second">'
            f'{timer("timeDuration", "PT1S")}</bpmn:intermediateCatchEvent><bpmn:endEvent id="End" />'
            + chain("Start", "Wait", "End"),
        )
    )
    started = engine.start_instance("Pause", {"n": 1})["processInstanceId"]
    assert waiting(engine, started, "bpmn:IntermediateCatchEvent")["flowNodeId"] == "Wait"

    poll(lambda: state_of(engine, started) == "finished")
    assert instance(engine, started)["endToken"] == {"n": 1}


def test_a_boundary_timer_interrupts_a_user_task_nobody_finished(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "Escalation",
            '<bpmn:startEvent id="Start" /><bpmn:userTask id="Approve" name="Approve" />'
            '<bpmn:boundaryEvent id="TooLate" name="Too late" attachedToRef="Approve">'
            f"{timer('timeDuration', 'token.current.patience')}</bpmn:boundaryEvent>"
            '<bpmn:endEvent id="Approved" /><bpmn:endEvent id="Escalated" />'
            + chain("Start", "Approve", "Approved")
            + chain("TooLate", "Escalated"),
        )
    )
    late = engine.start_instance("Escalation", {"patience": "PT1S"})["processInstanceId"]
    on_time = engine.start_instance("Escalation", {"patience": "PT1H"})["processInstanceId"]
    (task,) = engine.user_tasks(processInstanceId=on_time)
    assert put(engine, f"/user_tasks/{task['flowNodeInstanceId']}/finish").status_code == 204

    poll(lambda: state_of(engine, late) == "finished")
    assert instance(engine, late)["endEventId"] == "Escalated"
    assert instance(engine, on_time)["endEventId"] == "Approved"
    (approve,) = flow_nodes(engine, processInstanceId=late, flowNodeId="Approve")
    assert approve["state"] == "canceled"
    # the boundary event waited beside the task; finishing the task in time cancelled it
    (too_late,) = flow_nodes(engine, processInstanceId=on_time, flowNodeId="TooLate")
    assert too_late["state"] == "canceled"


def test_timer_dates_in_the_past_and_durations_from_the_token(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "Dates",
            f'<bpmn:startEvent id="Start" /><bpmn:intermediateCatchEvent id="Past">'
            f"{timer('timeDate', '2020-01-01T00:00:00Z')}</bpmn:intermediateCatchEvent>"
            f'<bpmn:intermediateCatchEvent id="FromToken">{timer("timeDuration", "token.current.delay")}'
            '</bpmn:intermediateCatchEvent><bpmn:endEvent id="End" />' + chain("Start", "Past", "FromToken", "End"),
        )
    )
    started = engine.start_instance("Dates", {"delay": "PT1S"})["processInstanceId"]
    poll(lambda: state_of(engine, started) == "finished")


def test_a_timer_expression_that_is_no_duration_fails_the_instance_with_a_message(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "BadTimer",
            f'<bpmn:startEvent id="Start" /><bpmn:intermediateCatchEvent id="Wait">'
            f'{timer("timeDuration", "token.current.delay")}</bpmn:intermediateCatchEvent><bpmn:endEvent id="End" />'
            + chain("Start", "Wait", "End"),
        )
    )
    started = engine.start_instance("BadTimer", {"delay": 42})["processInstanceId"]
    failed = instance(engine, started)
    assert failed["state"] == "error"
    assert "Wait" in failed["error"]["message"]


def test_a_pending_timer_survives_a_restart_of_the_engine(engine_server: EngineServer) -> None:
    engine_server.deploy(
        studio_model(
            "Overnight",
            f'<bpmn:startEvent id="Start" /><bpmn:intermediateCatchEvent id="Night">{timer("timeDuration", "PT1S")}'
            '</bpmn:intermediateCatchEvent><bpmn:endEvent id="Morning" />' + chain("Start", "Night", "Morning"),
        )
    )
    started = engine_server.start_instance("Overnight")["processInstanceId"]
    engine_server.stop()
    time.sleep(2)  # the timer falls due while the engine is down

    engine_server.start()

    poll(lambda: state_of(engine_server, started) == "finished")
    (night,) = flow_nodes(engine_server, processInstanceId=started, flowNodeId="Night")
    assert night["state"] == "finished"


def test_a_waiting_timer_can_be_fired_at_once(engine: EngineServer) -> None:
    engine.deploy(
        studio_model(
            "LongWait",
            f'<bpmn:startEvent id="Start" /><bpmn:intermediateCatchEvent id="Week">{timer("timeDuration", "P7D")}'
            '</bpmn:intermediateCatchEvent><bpmn:endEvent id="End" />' + chain("Start", "Week", "End"),
        )
    )
    started = engine.start_instance("LongWait")["processInstanceId"]
    week = waiting(engine, started, "bpmn:IntermediateCatchEvent")

    assert post(engine, f"/timer/{week['flowNodeInstanceId']}/trigger").status_code == 204
    assert state_of(engine, started) == "finished"
    assert post(engine, f"/timer/{week['flowNodeInstanceId']}/trigger").status_code == 404


# -- starting -------------------------------------------------------------------------------------------------


def test_the_literal_placeholder_path_starts_the_model_named_in_the_body(engine: EngineServer) -> None:
    """What the official TypeScript client's startProcessInstanceAndAwaitEndEvent posts."""
    engine.deploy(studio_model("Quick", '<bpmn:startEvent id="S" /><bpmn:endEvent id="E" />' + chain("S", "E")))
    response = post(
        engine,
        "/process_models/:process_model_id/start",
        {"processModelId": "Quick", "initialToken": {"a": 1}, "returnOn": 2},
    )
    assert response.status_code == 200, response.text
    assert response.json()["tokenPayload"] == {"a": 1}
    assert post(engine, "/process_models/:process_model_id/start", {"returnOn": 1}).status_code == 400


# -- refused at deploy ----------------------------------------------------------------------------------------

REFUSED = {
    "complex gateway": ('<bpmn:complexGateway id="Odd" />', "Odd"),
    "business rule task": ('<bpmn:businessRuleTask id="Rules" name="Decide" />', "Rules"),
    "conditional event": (
        '<bpmn:intermediateCatchEvent id="When"><bpmn:conditionalEventDefinition id="C">'
        "<bpmn:condition>token.current.x</bpmn:condition></bpmn:conditionalEventDefinition>"
        "</bpmn:intermediateCatchEvent>",
        "When",
    ),
    "multi-instance": (
        '<bpmn:userTask id="Each"><bpmn:multiInstanceLoopCharacteristics /></bpmn:userTask>',
        "Each",
    ),
    "timer start (cronjob)": (
        f'<bpmn:startEvent id="Nightly">{timer("timeCycle", "R/PT1H")}</bpmn:startEvent>',
        "Nightly",
    ),
    "service task without a worker": ('<bpmn:serviceTask id="Call" name="Call a URL" />', "Call"),
    "message without a message element": (
        '<bpmn:intermediateCatchEvent id="Lost"><bpmn:messageEventDefinition id="M" /></bpmn:intermediateCatchEvent>',
        "Lost",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_the_engine_cannot_run_is_refused_at_deploy_naming_the_element(engine: EngineServer, case: str) -> None:
    element, element_id = REFUSED[case]
    xml = studio_model("Refused", '<bpmn:startEvent id="S" />' + element)

    response = httpx.post(engine.api + "/process_definitions", json={"xml": xml}, headers=engine.headers())

    assert response.status_code == 400, response.text
    assert f'"{element_id}"' in response.json()["message"]
