"""Building BPMN documents and reading snapshots: what the BPMN tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedded_engine.bpmn import (
    FlowNodeInstanceSnapshot,
    InstanceSnapshot,
    ParsedDefinitions,
    ProcessRunner,
    parse_definitions,
)
from tests.conftest import EXAMPLES, SHARED_PROCESSES

__all__ = [
    "EXAMPLES",
    "HEADER",
    "ORDER",
    "SHARED_PROCESSES",
    "flow",
    "gateway_model",
    "load",
    "model",
    "needs_real_models",
    "node",
    "only_suspended",
    "suspended",
]

#: The real ProcessCube models, ``2_Rechnungserstellung_soll.bpmn`` and ``SampleWithAppSDK.bpmn`` (exported by 5Minds
#: Studio, from the public repository 5minds/ProcessCube.AppTemplate, MIT), are test data outside this repository:
#: the tests that run them skip unless they lie in ``../shared/processes`` beside the checkout.
needs_real_models = pytest.mark.skipif(
    not SHARED_PROCESSES.is_dir(), reason="the shared real ProcessCube models are not beside the repo"
)

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Test_Definition" '
    'targetNamespace="http://bpmn.io/schema/bpmn">\n'
)

ORDER: dict[str, Any] = {"amount": 1500, "customerType": "vip", "customerId": "c-42"}


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
        '<bpmn:intermediateThrowEvent id="yes" name="Yes" /><bpmn:intermediateThrowEvent id="no" name="No" />'
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
