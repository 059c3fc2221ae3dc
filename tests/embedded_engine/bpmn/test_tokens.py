"""ProcessCube's token ``{current, history}``: how it passes from node to node and merges at a join."""

from __future__ import annotations

from embedded_engine.bpmn import ProcessRunner, parse_definitions
from tests.embedded_engine.bpmn._helpers import (
    EXAMPLES,
    flow,
    gateway_model,
    load,
    model,
    node,
    only_suspended,
    suspended,
)


def test_an_untyped_task_waits_and_passes_the_token_through_once_finished() -> None:
    xml = model(
        '<bpmn:startEvent id="start" /><bpmn:task id="t" name="Nothing" />'
        '<bpmn:intermediateThrowEvent id="thrown" /><bpmn:endEvent id="end" />'
        + flow("f0", "start", "t")
        + flow("f1", "t", "thrown")
        + flow("f2", "thrown", "end")
    )
    runner = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token={"k": "v"})
    (task,) = suspended(runner.snapshot())
    assert (task.flow_node_id, task.flow_node_type) == ("t", "bpmn:Task")

    runner.finish_untyped_task(task.flow_node_instance_id)

    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_token == {"k": "v"}
    assert [n.flow_node_type for n in snapshot.flow_node_instances] == [
        "bpmn:StartEvent",
        "bpmn:Task",
        "bpmn:IntermediateThrowEvent",
        "bpmn:EndEvent",
    ]


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
