"""Model code: conditions and scripts run as JavaScript in the sandbox, never as Python; their failures are state."""

from __future__ import annotations

from embedded_engine.bpmn import ProcessRunner, parse_definitions
from tests.embedded_engine.bpmn._helpers import flow, gateway_model, model, node, only_suspended, suspended

# -- conditions ------------------------------------------------------------------------------------------------


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


# -- scripts ---------------------------------------------------------------------------------------------------


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
