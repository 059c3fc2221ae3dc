"""Running instances: start, finish user and external tasks, serialize and load, terminate, snapshots.

Tests marked ``needs_real_models`` also run the real ProcessCube models when they are beside the checkout.
"""

from __future__ import annotations

import pytest

from embedded_engine.bpmn import ParsedDefinitions, ProcessRunner, parse_definitions
from tests.embedded_engine.bpmn._helpers import (
    EXAMPLES,
    ORDER,
    SHARED_PROCESSES,
    flow,
    load,
    model,
    needs_real_models,
    node,
    only_suspended,
    suspended,
)

# -- the approval model ----------------------------------------------------------------------------------------


def test_approval_waits_at_approve_order_with_the_initial_token(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    snapshot = runner.snapshot()
    assert snapshot.state == "running"
    task = only_suspended(runner, "approveOrder")
    assert task.flow_node_type == "bpmn:UserTask"
    assert task.flow_node_name == "Approve order"
    assert task.flow_node_lane == "Approver"
    assert task.start_token == ORDER
    assert task.end_token is None
    assert task.user_task_config is not None
    assert [f["id"] for f in task.user_task_config["formFields"]] == ["approved", "comment", "priority"]
    start = node(snapshot, "StartEvent_OrderReceived")
    assert start.state == "finished"
    assert start.flow_node_type == "bpmn:StartEvent"
    assert start.end_token == ORDER
    assert start.user_task_config is None
    assert task.previous_flow_node_instance_id == start.flow_node_instance_id


def test_approved_order_goes_to_notify_customer_then_ends(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    approve = only_suspended(runner, "approveOrder")
    runner.finish_user_task(approve.flow_node_instance_id, {"approved": True, "comment": "fine"})
    notify = only_suspended(runner, "notifyCustomer")
    assert notify.flow_node_lane == "Clerk"
    assert notify.start_token == {"approved": True, "comment": "fine"}
    assert node(runner.snapshot(), "approveOrder").end_token == {"approved": True, "comment": "fine"}
    assert node(runner.snapshot(), "Gateway_Approved").state == "finished"
    runner.finish_user_task(notify.flow_node_instance_id, {"notified": True})
    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "EndEvent_Approved"
    assert snapshot.end_token == {"notified": True}
    assert not suspended(snapshot)
    assert [n.flow_node_id for n in snapshot.flow_node_instances] == [
        "StartEvent_OrderReceived",
        "approveOrder",
        "Gateway_Approved",
        "notifyCustomer",
        "EndEvent_Approved",
    ]


def test_rejected_order_goes_to_revise_order(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    approve = only_suspended(runner, "approveOrder")
    runner.finish_user_task(approve.flow_node_instance_id, {"approved": False, "comment": "too much"})
    revise = only_suspended(runner, "reviseOrder")
    runner.finish_user_task(revise.flow_node_instance_id, {"revisedAmount": 900})
    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "EndEvent_Rejected"
    assert snapshot.end_token == {"revisedAmount": 900}


def test_string_true_from_a_form_also_approves(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    approve = only_suspended(runner, "approveOrder")
    runner.finish_user_task(approve.flow_node_instance_id, {"approved": "true"})
    only_suspended(runner, "notifyCustomer")


def test_finishing_an_unknown_or_finished_task_raises_key_error(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    approve = only_suspended(runner, "approveOrder")
    with pytest.raises(KeyError):
        runner.finish_user_task("not-a-uuid", {})
    with pytest.raises(KeyError):
        runner.finish_user_task("00000000-0000-0000-0000-000000000000", {})
    start = node(runner.snapshot(), "StartEvent_OrderReceived")
    with pytest.raises(KeyError):
        runner.finish_user_task(start.flow_node_instance_id, {})
    runner.finish_user_task(approve.flow_node_instance_id, {"approved": True})
    with pytest.raises(KeyError):
        runner.finish_user_task(approve.flow_node_instance_id, {"approved": True})


def test_flow_node_instance_ids_are_unique_across_instances(approval: ParsedDefinitions) -> None:
    first = only_suspended(ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER), "approveOrder")
    second = only_suspended(ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER), "approveOrder")
    assert first.flow_node_instance_id != second.flow_node_instance_id


def test_unknown_process_model_or_start_event_is_a_value_error(approval: ParsedDefinitions) -> None:
    with pytest.raises(ValueError, match="Nope"):
        ProcessRunner.start(approval, "Nope", initial_token={})
    with pytest.raises(ValueError, match="nostart"):
        ProcessRunner.start(approval, "ApprovalProcess", initial_token={}, start_event_id="nostart")


def test_explicit_start_event_id_is_accepted(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(
        approval, "ApprovalProcess", initial_token=ORDER, start_event_id="StartEvent_OrderReceived"
    )
    only_suspended(runner, "approveOrder")


def test_start_event_id_selects_among_several_start_events() -> None:
    xml = model(
        '<bpmn:startEvent id="s1" /><bpmn:startEvent id="s2" />'
        '<bpmn:userTask id="a" /><bpmn:userTask id="b" /><bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f1", "s1", "a")
        + flow("f2", "s2", "b")
        + flow("f3", "a", "e1")
        + flow("f4", "b", "e2")
    )
    definitions = parse_definitions(xml)
    second = ProcessRunner.start(definitions, "TestProcess", initial_token={}, start_event_id="s2").snapshot()
    assert [(n.flow_node_id, n.state) for n in second.flow_node_instances] == [("s2", "finished"), ("b", "suspended")]
    default = ProcessRunner.start(definitions, "TestProcess", initial_token={}).snapshot()
    assert [(n.flow_node_id, n.state) for n in default.flow_node_instances] == [("s1", "finished"), ("a", "suspended")]


# -- persistence and termination -------------------------------------------------------------------------------


def test_serialize_and_load_in_the_middle_then_finish_the_next_task(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    approve = only_suspended(runner, "approveOrder")
    runner.finish_user_task(approve.flow_node_instance_id, {"approved": True})
    state = runner.serialize()
    assert isinstance(state, str)

    fresh = load(EXAMPLES / "approval_process.bpmn")  # as after a restart: parsed again
    restored = ProcessRunner.load(fresh, "ApprovalProcess", state)
    assert restored.snapshot() == runner.snapshot()
    notify = only_suspended(restored, "notifyCustomer")
    restored.finish_user_task(notify.flow_node_instance_id, {"notified": True})
    snapshot = restored.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "EndEvent_Approved"
    assert node(snapshot, "approveOrder").flow_node_instance_id == approve.flow_node_instance_id


def test_load_refuses_state_of_another_process_model(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    other = load(EXAMPLES / "leave_request.bpmn")
    with pytest.raises(ValueError, match="process model"):
        ProcessRunner.load(other, "LeaveRequest", runner.serialize())


def test_terminate_turns_suspended_tasks_terminated(approval: ParsedDefinitions) -> None:
    runner = ProcessRunner.start(approval, "ApprovalProcess", initial_token=ORDER)
    approve = only_suspended(runner, "approveOrder")
    runner.terminate()
    snapshot = runner.snapshot()
    assert snapshot.state == "terminated"
    assert node(snapshot, "approveOrder").state == "terminated"
    assert node(snapshot, "StartEvent_OrderReceived").state == "finished"
    assert [n.flow_node_id for n in snapshot.flow_node_instances] == ["StartEvent_OrderReceived", "approveOrder"]
    with pytest.raises(KeyError):
        runner.finish_user_task(approve.flow_node_instance_id, {"approved": True})
    restored = ProcessRunner.load(approval, "ApprovalProcess", runner.serialize())
    assert restored.snapshot().state == "terminated"


# -- the other example models and the real ProcessCube models --------------------------------------------------


def test_leave_request_enum_field_has_default_value() -> None:
    definitions = load(EXAMPLES / "leave_request.bpmn")
    runner = ProcessRunner.start(definitions, "LeaveRequest", initial_token={"employee": "Ada"})
    request = only_suspended(runner, "requestLeave")
    assert request.flow_node_lane == "Employee"
    assert request.user_task_config is not None
    leave_type = request.user_task_config["formFields"][0]
    assert leave_type["type"] == "enum"
    assert leave_type["defaultValue"] == "vacation"
    assert [v["id"] for v in leave_type["enumValues"]] == ["vacation", "sick", "unpaid"]
    runner.finish_user_task(request.flow_node_instance_id, {"leaveType": "sick", "days": 2})
    decide = only_suspended(runner, "decideLeave")
    assert decide.flow_node_lane == "Manager"
    runner.finish_user_task(decide.flow_node_instance_id, {"granted": True})
    assert runner.snapshot().state == "finished"


@needs_real_models
def test_sample_with_app_sdk_runs_through_its_user_tasks() -> None:
    definitions = load(SHARED_PROCESSES / "SampleWithAppSDK.bpmn")
    runner = ProcessRunner.start(definitions, "SampleWithAppSDK_Process", initial_token={})
    enter = only_suspended(runner, "begrssungEingeben")
    assert enter.user_task_config == {"formFields": [{"id": "greeting", "type": "string", "label": "Begrüssung"}]}
    runner.finish_user_task(enter.flow_node_instance_id, {"greeting": "Hallo"})
    external = only_suspended(runner, "begrssungErgnzen")
    assert external.flow_node_type == "bpmn:ServiceTask"
    assert external.start_token == {"greeting": "Hallo"}
    runner.finish_external_task(external.flow_node_instance_id, {"greeting_back": "Hallo zurück"})
    receive = only_suspended(runner, "begrssungBekommen")
    assert receive.start_token == {"greeting_back": "Hallo zurück"}
    runner.finish_user_task(receive.flow_node_instance_id, {"greeting_back": "Danke"})
    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "Event_0uodxce"


@needs_real_models
def test_rechnungserstellung_follows_its_javascript_conditions() -> None:
    definitions = load(SHARED_PROCESSES / "2_Rechnungserstellung_soll.bpmn")
    model_def = definitions.process_model("Rechnungserstellung_soll")
    assert model_def.name == "Rechnungserstellung (soll)"
    runner = ProcessRunner.start(definitions, "Rechnungserstellung_soll", initial_token={})
    capture = only_suspended(runner, "rechnung_erfassen")
    assert capture.flow_node_lane == "Controlling"
    assert capture.user_task_config is not None
    assert [f["type"] for f in capture.user_task_config["formFields"]] == ["textarea", "string", "number"]
    invoice = {"empfaenger": "ACME", "produkt": "Beratung", "betrag": 100}
    runner.finish_user_task(capture.flow_node_instance_id, invoice)
    # an external task: the instance waits there
    create = only_suspended(runner, "Activity_1q5rlr7")
    assert create.flow_node_type == "bpmn:ServiceTask"
    assert runner.snapshot().state == "running"
    runner.finish_external_task(create.flow_node_instance_id, {"pdf": "rechnung.pdf"})

    release = only_suspended(runner, "rechnung_freigeben")
    assert release.flow_node_lane == "Geschäftsführung"
    runner.finish_user_task(release.flow_node_instance_id, {"confirmed": "false"})
    # "Nein" loops back to capturing the invoice
    again = only_suspended(runner, "rechnung_erfassen")
    assert again.flow_node_instance_id != capture.flow_node_instance_id
    runner.finish_user_task(again.flow_node_instance_id, invoice)
    runner.finish_external_task(only_suspended(runner, "Activity_1q5rlr7").flow_node_instance_id, {})
    release = only_suspended(runner, "rechnung_freigeben")
    runner.finish_user_task(release.flow_node_instance_id, {"confirmed": "true"})
    # "Ja" goes on to sending the invoice, another external task
    send = only_suspended(runner, "Activity_1ma93lo")
    runner.finish_external_task(send.flow_node_instance_id, {"sent": True})
    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "Event_0ucrljd"


@needs_real_models
def test_rechnungserstellung_with_unexpected_answer_errors_naming_the_gateway() -> None:
    definitions = load(SHARED_PROCESSES / "2_Rechnungserstellung_soll.bpmn")
    runner = ProcessRunner.start(definitions, "Rechnungserstellung_soll", initial_token={})
    runner.finish_user_task(only_suspended(runner, "rechnung_erfassen").flow_node_instance_id, {})
    runner.finish_external_task(only_suspended(runner, "Activity_1q5rlr7").flow_node_instance_id, {})
    runner.finish_user_task(only_suspended(runner, "rechnung_freigeben").flow_node_instance_id, {"confirmed": "?"})
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "Gateway_0ca8mh8" in snapshot.error["message"]
    assert 'token.current.confirmed === "true"' in snapshot.error["message"]
