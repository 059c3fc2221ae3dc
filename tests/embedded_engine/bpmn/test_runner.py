"""The BPMN runtime: deploying 5Minds Studio models and running instances with ProcessCube token semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedded_engine.bpmn import (
    DeployError,
    FlowNodeInstanceSnapshot,
    InstanceSnapshot,
    ParsedDefinitions,
    ProcessRunner,
    parse_definitions,
)

REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "examples" / "processes"
SHARED = Path(__file__).parents[2].parent / "shared" / "processes"

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Test_Definition" '
    'targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def model(body: str, process_id: str = "TestProcess") -> str:
    return (
        f'{HEADER}<bpmn:process id="{process_id}" isExecutable="true">\n{body}\n</bpmn:process>\n</bpmn:definitions>\n'
    )


def flow(flow_id: str, source: str, target: str, condition: str | None = None) -> str:
    if condition is None:
        return f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}" />'
    return (
        f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}">'
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"><![CDATA[{condition}]]>'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
    )


def gateway_model(condition: str) -> str:
    return model(
        '<bpmn:startEvent id="start" />'
        '<bpmn:exclusiveGateway id="gw" default="f_default" />'
        '<bpmn:task id="yes" name="Yes" /><bpmn:task id="no" name="No" />'
        '<bpmn:endEvent id="end_yes" /><bpmn:endEvent id="end_no" />'
        + flow("f0", "start", "gw")
        + flow("f_cond", "gw", "yes", condition)
        + flow("f_default", "gw", "no")
        + flow("f1", "yes", "end_yes")
        + flow("f2", "no", "end_no")
    )


def load(path: Path) -> ParsedDefinitions:
    return parse_definitions(path.read_text(encoding="utf-8"))


def suspended(snapshot: InstanceSnapshot, flow_node_id: str | None = None) -> list[FlowNodeInstanceSnapshot]:
    return [
        n
        for n in snapshot.flow_node_instances
        if n.state == "suspended" and (flow_node_id is None or n.flow_node_id == flow_node_id)
    ]


def only_suspended(runner: ProcessRunner, flow_node_id: str) -> FlowNodeInstanceSnapshot:
    tasks = suspended(runner.snapshot(), flow_node_id)
    assert len(tasks) == 1, runner.snapshot()
    return tasks[0]


def node(snapshot: InstanceSnapshot, flow_node_id: str) -> FlowNodeInstanceSnapshot:
    found = [n for n in snapshot.flow_node_instances if n.flow_node_id == flow_node_id]
    assert len(found) == 1, [n.flow_node_id for n in snapshot.flow_node_instances]
    return found[0]


ORDER: dict[str, Any] = {"amount": 1500, "customerType": "vip", "customerId": "c-42"}


@pytest.fixture(scope="module")
def approval() -> ParsedDefinitions:
    return load(EXAMPLES / "approval_process.bpmn")


# -- deployment ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.bpmn")), ids=lambda p: p.name)
def test_every_example_model_deploys(path: Path) -> None:
    definitions = load(path)
    assert any(m.is_executable for m in definitions.process_models)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real ProcessCube models are not beside the repo")
@pytest.mark.parametrize("name", ["2_Rechnungserstellung_soll.bpmn", "SampleWithAppSDK.bpmn"], ids=lambda n: str(n))
def test_every_real_processcube_model_deploys(name: str) -> None:
    definitions = load(SHARED / name)
    assert definitions.process_models[0].is_executable


def test_approval_model_exposes_lanes_and_form_fields(approval: ParsedDefinitions) -> None:
    model_def = approval.process_model("ApprovalProcess")
    assert [e.id for e in model_def.start_events] == ["StartEvent_OrderReceived"]
    assert {e.id for e in model_def.end_events} == {"EndEvent_Approved", "EndEvent_Rejected"}
    approve = next(n for n in model_def.flow_nodes if n.id == "approveOrder")
    assert approve.type == "bpmn:UserTask"
    assert approve.lane == "Approver"
    fields = approve.user_task_config["formFields"]
    assert fields[0] == {"id": "approved", "type": "boolean", "label": "Approve the order?", "defaultValue": "false"}
    assert fields[1] == {"id": "comment", "type": "string", "label": "Comment"}
    assert fields[2]["enumValues"] == [
        {"id": "low", "name": "Low"},
        {"id": "normal", "name": "Normal"},
        {"id": "high", "name": "High"},
    ]


def test_malformed_xml_reports_the_parser_line() -> None:
    xml = HEADER + '<bpmn:process id="p" isExecutable="true">\n<bpmn:startEvent id="s">\n</bpmn:process>\n'
    with pytest.raises(DeployError) as info:
        parse_definitions(xml)
    assert info.value.line == 5  # where the parser notices the unclosed startEvent
    assert "line 5" in info.value.message


def test_document_without_executable_process_is_refused() -> None:
    xml = model('<bpmn:startEvent id="s" />').replace('isExecutable="true"', 'isExecutable="false"')
    with pytest.raises(DeployError, match="no executable process"):
        parse_definitions(xml)


def test_participant_with_unknown_process_ref_is_refused() -> None:
    xml = model('<bpmn:startEvent id="s" />').replace(
        "<bpmn:process",
        '<bpmn:collaboration id="c"><bpmn:participant id="pa" processRef="Nowhere" /></bpmn:collaboration>'
        "<bpmn:process",
    )
    with pytest.raises(DeployError, match="Nowhere"):
        parse_definitions(xml)


def test_sequence_flow_to_unknown_element_is_refused() -> None:
    with pytest.raises(DeployError, match="ghost"):
        parse_definitions(model('<bpmn:startEvent id="s" />' + flow("f", "s", "ghost")))


def test_unsupported_structure_is_a_deploy_error_not_a_spiff_traceback() -> None:
    xml = model('<bpmn:startEvent id="s" /><bpmn:complexGateway id="g" />' + flow("a", "s", "g"))
    with pytest.raises(DeployError):
        parse_definitions(xml)


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


def test_inclusive_gateway_takes_every_matching_flow_or_the_default() -> None:
    xml = model(
        '<bpmn:startEvent id="s" /><bpmn:inclusiveGateway id="g" default="fd" />'
        '<bpmn:userTask id="a" /><bpmn:userTask id="b" /><bpmn:userTask id="c" />'
        '<bpmn:inclusiveGateway id="j" /><bpmn:endEvent id="e" />'
        + flow("f0", "s", "g")
        + flow("f1", "g", "a", "token.current.a")
        + flow("f2", "g", "b", "token.current.b")
        + flow("fd", "g", "c")
        + flow("f3", "a", "j")
        + flow("f4", "b", "j")
        + flow("f5", "c", "j")
        + flow("f6", "j", "e")
    )
    definitions = parse_definitions(xml)
    both = ProcessRunner.start(definitions, "TestProcess", initial_token={"a": 1, "b": 1})
    assert {n.flow_node_id for n in suspended(both.snapshot())} == {"a", "b"}
    for task in suspended(both.snapshot()):
        both.finish_user_task(task.flow_node_instance_id, {task.flow_node_id: True})
    assert both.snapshot().state == "finished"
    assert both.snapshot().end_token == {"a": True, "b": True}
    neither = ProcessRunner.start(definitions, "TestProcess", initial_token={})
    assert [n.flow_node_id for n in suspended(neither.snapshot())] == ["c"]


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


# -- parallel gateways and tokens ------------------------------------------------------------------------------


def test_parallel_tasks_both_wait_and_join_merges_their_results() -> None:
    definitions = load(EXAMPLES / "onboarding_process.bpmn")
    runner = ProcessRunner.start(definitions, "OnboardingProcess", initial_token={"employee": "Ada"})
    waiting = suspended(runner.snapshot())
    assert {t.flow_node_id for t in waiting} == {"signContract", "prepareWorkplace"}
    assert {t.flow_node_lane for t in waiting} == {"HR", "IT"}
    assert all(t.start_token == {"employee": "Ada"} for t in waiting)

    contract = only_suspended(runner, "signContract")
    runner.finish_user_task(contract.flow_node_instance_id, {"contractSigned": True, "by": "hr"})
    assert runner.snapshot().state == "running"
    workplace = only_suspended(runner, "prepareWorkplace")
    runner.finish_user_task(workplace.flow_node_instance_id, {"laptopModel": "developer", "by": "it"})

    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "EndEvent_Onboarded"
    # current after the join: the branches' results merged, the later arrival winning a shared key
    assert snapshot.end_token == {"contractSigned": True, "laptopModel": "developer", "by": "it"}
    join = node(snapshot, "Gateway_Join")
    assert join.state == "finished"
    assert [n.flow_node_id for n in snapshot.flow_node_instances].count("Gateway_Join") == 1


def test_token_history_keeps_every_node_result_across_a_join() -> None:
    probe = "return token.history;"
    xml = model(
        '<bpmn:startEvent id="start" />'
        '<bpmn:parallelGateway id="split" /><bpmn:parallelGateway id="join" />'
        '<bpmn:userTask id="a" name="A" /><bpmn:userTask id="b" name="B" />'
        f'<bpmn:scriptTask id="probe" scriptFormat="javascript"><bpmn:script>{probe}</bpmn:script></bpmn:scriptTask>'
        '<bpmn:endEvent id="end" />'
        + flow("f0", "start", "split")
        + flow("f1", "split", "a")
        + flow("f2", "split", "b")
        + flow("f3", "a", "join")
        + flow("f4", "b", "join")
        + flow("f5", "join", "probe")
        + flow("f6", "probe", "end")
    )
    runner = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token={"x": 1})
    runner.finish_user_task(only_suspended(runner, "b").flow_node_instance_id, {"b": 2})
    runner.finish_user_task(only_suspended(runner, "a").flow_node_instance_id, {"a": 1})
    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    history = snapshot.end_token
    assert history == {
        "start": {"x": 1},
        "split": {"x": 1},
        "a": {"a": 1},
        "b": {"b": 2},
        "join": {"a": 1, "b": 2},
    }


def test_token_history_is_visible_to_conditions() -> None:
    definitions = parse_definitions(gateway_model('token.history.start.kind === "vip"'))
    runner = ProcessRunner.start(definitions, "TestProcess", initial_token={"kind": "vip"})
    assert runner.snapshot().end_event_id == "end_yes"
    runner = ProcessRunner.start(definitions, "TestProcess", initial_token={"kind": "regular"})
    assert runner.snapshot().end_event_id == "end_no"


# -- conditions, errors, scripts -------------------------------------------------------------------------------


def test_condition_that_throws_puts_instance_in_error() -> None:
    definitions = parse_definitions(gateway_model("token.current.missing.deeper === 1"))
    runner = ProcessRunner.start(definitions, "TestProcess", initial_token={"a": 1})
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "f_cond" in snapshot.error["message"]
    assert "token.current.missing.deeper === 1" in snapshot.error["message"]
    assert "TypeError" in snapshot.error["message"]
    gateway = node(snapshot, "gw")
    assert gateway.state == "error"
    assert gateway.error == snapshot.error
    assert gateway.start_token == {"a": 1}
    assert node(snapshot, "start").end_token == {"a": 1}
    restored = ProcessRunner.load(definitions, "TestProcess", runner.serialize())
    assert restored.snapshot().state == "error"


def test_gateway_without_matching_flow_puts_instance_in_error() -> None:
    xml = model(
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="gw" />'
        '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f0", "start", "gw")
        + flow("f1", "gw", "e1", "token.current.n === 1")
        + flow("f2", "gw", "e2", "token.current.n === 2")
    )
    runner = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token={"n": 3})
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "gw" in snapshot.error["message"]
    assert "token.current.n === 1" in snapshot.error["message"]


def test_condition_that_loops_forever_times_out_into_error_state() -> None:
    runner = ProcessRunner.start(parse_definitions(gateway_model("while(true){}")), "TestProcess", initial_token={})
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "timed out" in snapshot.error["message"]


def test_condition_escaping_to_the_host_is_an_error_not_an_escape() -> None:
    runner = ProcessRunner.start(
        parse_definitions(gateway_model('this.constructor.constructor("return process")().exit(1)')),
        "TestProcess",
        initial_token={},
    )
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "ReferenceError" in snapshot.error["message"]


def test_python_condition_is_never_evaluated_as_python() -> None:
    runner = ProcessRunner.start(
        parse_definitions(gateway_model("__import__('os').getcwd() != ''")), "TestProcess", initial_token={}
    )
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "ReferenceError" in snapshot.error["message"]


def test_condition_polluting_object_prototype_does_not_affect_the_next_instance() -> None:
    polluting = parse_definitions(gateway_model("(Object.prototype.approved = true, false)"))
    assert ProcessRunner.start(polluting, "TestProcess", initial_token={}).snapshot().end_event_id == "end_no"
    checking = parse_definitions(gateway_model("token.current.approved === true"))
    assert ProcessRunner.start(checking, "TestProcess", initial_token={}).snapshot().end_event_id == "end_no"


def test_empty_condition_is_taken_like_no_condition() -> None:
    xml = model(
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="gw" />'
        '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f0", "start", "gw")
        + flow("f1", "gw", "e1", "token.current.n === 1")
        + '<bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="e2">'
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" /></bpmn:sequenceFlow>'
    )
    definitions = parse_definitions(xml)
    assert ProcessRunner.start(definitions, "TestProcess", initial_token={"n": 2}).snapshot().end_event_id == "e2"


def test_script_task_result_becomes_token_current() -> None:
    script = "return { total: token.current.amount * 2, seen: Object.keys(token.history) };"
    xml = model(
        '<bpmn:startEvent id="start" />'
        f'<bpmn:scriptTask id="calc" name="Calculate" scriptFormat="javascript"><bpmn:script>{script}'
        "</bpmn:script></bpmn:scriptTask>"
        '<bpmn:userTask id="check" name="Check" /><bpmn:endEvent id="end" />'
        + flow("f0", "start", "calc")
        + flow("f1", "calc", "check")
        + flow("f2", "check", "end")
    )
    runner = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token={"amount": 21})
    snapshot = runner.snapshot()
    calc = node(snapshot, "calc")
    assert calc.flow_node_type == "bpmn:ScriptTask"
    assert calc.end_token == {"total": 42, "seen": ["start"]}
    assert only_suspended(runner, "check").start_token == {"total": 42, "seen": ["start"]}


def test_script_task_that_throws_puts_instance_in_error() -> None:
    xml = model(
        '<bpmn:startEvent id="start" />'
        '<bpmn:scriptTask id="calc"><bpmn:script>throw new Error("nope");</bpmn:script></bpmn:scriptTask>'
        '<bpmn:endEvent id="end" />' + flow("f0", "start", "calc") + flow("f1", "calc", "end")
    )
    snapshot = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token={}).snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "calc" in snapshot.error["message"]
    assert "nope" in snapshot.error["message"]


def test_empty_task_and_throw_event_pass_the_token_through() -> None:
    xml = model(
        '<bpmn:startEvent id="start" /><bpmn:task id="t" name="Nothing" />'
        '<bpmn:intermediateThrowEvent id="thrown" /><bpmn:endEvent id="end" />'
        + flow("f0", "start", "t")
        + flow("f1", "t", "thrown")
        + flow("f2", "thrown", "end")
    )
    snapshot = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token={"k": "v"}).snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_token == {"k": "v"}
    assert [n.flow_node_type for n in snapshot.flow_node_instances] == [
        "bpmn:StartEvent",
        "bpmn:Task",
        "bpmn:IntermediateThrowEvent",
        "bpmn:EndEvent",
    ]


# -- reserved ids ------------------------------------------------------------------------------------------------


def test_start_and_end_ids_that_clash_with_spiff_internals_work() -> None:
    xml = model(
        '<bpmn:laneSet><bpmn:lane id="l" name="Office"><bpmn:flowNodeRef>Start</bpmn:flowNodeRef>'
        "<bpmn:flowNodeRef>Task</bpmn:flowNodeRef><bpmn:flowNodeRef>End</bpmn:flowNodeRef></bpmn:lane>"
        "</bpmn:laneSet>"
        '<bpmn:startEvent id="Start" name="Begin" /><bpmn:userTask id="Task" name="Do it" />'
        '<bpmn:endEvent id="End" name="Done" />' + flow("f0", "Start", "Task") + flow("f1", "Task", "End")
    )
    definitions = parse_definitions(xml)
    model_def = definitions.process_model("TestProcess")
    assert [e.id for e in model_def.start_events] == ["Start"]
    assert [e.id for e in model_def.end_events] == ["End"]
    runner = ProcessRunner.start(definitions, "TestProcess", initial_token={"a": 1}, start_event_id="Start")
    task = only_suspended(runner, "Task")
    assert task.flow_node_lane == "Office"
    assert node(runner.snapshot(), "Start").flow_node_name == "Begin"
    restored = ProcessRunner.load(definitions, "TestProcess", runner.serialize())
    restored.finish_user_task(task.flow_node_instance_id, {"done": True})
    snapshot = restored.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "End"
    assert [n.flow_node_id for n in snapshot.flow_node_instances] == ["Start", "Task", "End"]


# -- the real ProcessCube models -------------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real ProcessCube models are not beside the repo")
def test_sample_with_app_sdk_runs_through_its_user_tasks() -> None:
    definitions = load(SHARED / "SampleWithAppSDK.bpmn")
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


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real ProcessCube models are not beside the repo")
def test_rechnungserstellung_follows_its_javascript_conditions() -> None:
    definitions = load(SHARED / "2_Rechnungserstellung_soll.bpmn")
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


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real ProcessCube models are not beside the repo")
def test_rechnungserstellung_with_unexpected_answer_errors_naming_the_gateway() -> None:
    definitions = load(SHARED / "2_Rechnungserstellung_soll.bpmn")
    runner = ProcessRunner.start(definitions, "Rechnungserstellung_soll", initial_token={})
    runner.finish_user_task(only_suspended(runner, "rechnung_erfassen").flow_node_instance_id, {})
    runner.finish_external_task(only_suspended(runner, "Activity_1q5rlr7").flow_node_instance_id, {})
    runner.finish_user_task(only_suspended(runner, "rechnung_freigeben").flow_node_instance_id, {"confirmed": "?"})
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "Gateway_0ca8mh8" in snapshot.error["message"]
    assert 'token.current.confirmed === "true"' in snapshot.error["message"]


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
