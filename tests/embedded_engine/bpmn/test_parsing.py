"""Parsing: which BPMN documents deploy, what their models expose, and how they are rewritten for SpiffWorkflow.

Tests marked ``needs_real_models`` also deploy the real ProcessCube models when they are beside the checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded_engine.bpmn import DeployError, ParsedDefinitions, ProcessRunner, parse_definitions
from tests.embedded_engine.bpmn._helpers import (
    EXAMPLES,
    HEADER,
    SHARED_PROCESSES,
    flow,
    load,
    model,
    needs_real_models,
    node,
    only_suspended,
)

# -- deployment ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.bpmn")), ids=lambda p: p.name)
def test_every_example_model_deploys(path: Path) -> None:
    definitions = load(path)
    assert any(m.is_executable for m in definitions.process_models)


@needs_real_models
@pytest.mark.parametrize("name", ["2_Rechnungserstellung_soll.bpmn", "SampleWithAppSDK.bpmn"], ids=lambda n: str(n))
def test_every_real_processcube_model_deploys(name: str) -> None:
    definitions = load(SHARED_PROCESSES / name)
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


# -- reserved ids ----------------------------------------------------------------------------------------------


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
