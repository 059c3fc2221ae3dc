"""The engine's JSON: what it stores, rendered the way the real ProcessCube engine serializes it.

Pure functions from store rows (and BPMN snapshots) to the engine API's objects: process models, process
instances, flow node instances (user tasks among them), the answer to a start request, and the EventMessages of
notifications. They follow the real engine's habits, which clients rely on: camelCase keys, optional fields left
out rather than ``null``, ``{}`` where the engine sends an empty token (the gateway's ``gateway/engine/wire.py``
reads these shapes, from this engine or a real one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bpmn import FlowNodeDef, InstanceSnapshot, ProcessModelDef

__all__ = [
    "USER_TASK",
    "flow_node_json",
    "process_event",
    "process_instance_json",
    "process_model_json",
    "start_answer",
    "task_event",
]

USER_TASK = "bpmn:UserTask"


def process_model_json(definition_id: str, digest: str, model: ProcessModelDef) -> dict[str, Any]:
    """A deployed process model, as ``GET /process_models`` lists it."""

    def node(definition: FlowNodeDef) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": definition.id,
            "name": definition.name,
            "flowNodeType": definition.type,
            "customProperties": {},
            "processModelId": model.process_model_id,
        }
        if model.name:
            item["processModelName"] = model.name
        return item

    result: dict[str, Any] = {
        "processDefinitionId": definition_id,
        "processModelId": model.process_model_id,
        "isExecutable": model.is_executable,
        "startEvents": [node(n) for n in model.start_events],
        "endEvents": [node(n) for n in model.end_events],
        "flowNodes": [node(n) for n in model.flow_nodes],
        "hash": digest,
    }
    if model.name:
        result["processModelName"] = model.name
    return result


def process_instance_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A process instance (a store row), as ``GET /process_instances/query`` lists it."""
    item: dict[str, Any] = {
        "processInstanceId": row["process_instance_id"],
        "processModelId": row["process_model_id"],
        "processDefinitionId": row["definition_id"],
        "hash": row["definition_hash"],
        "correlationId": row["correlation_id"],
        "ownerId": row["owner_id"],
        "startedByRootAccessToken": row["started_by_root"],
        "state": row["state"],
        "error": row["error"] or {},
        "createdAt": row["created_at"],
    }
    optional = {
        "processModelName": row["process_model_name"],
        "startEventId": row["start_event_id"],
        "endEventId": row["end_event_id"],
        "finishedAt": row["finished_at"],
        "terminatedByUserId": row["terminated_by"],
    }
    item.update({key: value for key, value in optional.items() if value is not None})
    if row["state"] == "finished":
        item["endToken"] = row["end_token"] if row["end_token"] is not None else {}
    return item


def flow_node_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A flow node instance as the real engine serializes it: optional fields without a value are left out."""
    item: dict[str, Any] = {
        "flowNodeInstanceId": row["flow_node_instance_id"],
        "flowNodeId": row["flow_node_id"],
        "flowNodeName": row["flow_node_name"],
        "flowNodeType": row["flow_node_type"],
        "state": row["state"],
        "processDefinitionId": row["process_definition_id"],
        "processModelId": row["process_model_id"],
        "processInstanceId": row["process_instance_id"],
        "correlationId": row["correlation_id"],
        "ownerId": row["owner_id"],
        "startToken": row["start_token"],
        "startedAt": row["created_at"],
    }
    optional = {
        "flowNodeLane": row["flow_node_lane"],
        "eventType": row["event_type"],
        "processModelName": row["process_model_name"],
        "parentProcessInstanceId": row["parent_process_instance_id"],
        "previousFlowNodeInstanceId": row["previous_flow_node_instance_id"],
        "endToken": row["end_token"],
        "finishedAt": row["finished_at"],
        "actualOwnerId": row["actual_owner_id"],
        "finishedByUserId": row["finished_by_user_id"],
        "error": row["error"],
        "userTaskConfig": row["user_task_config"],
    }
    item.update({key: value for key, value in optional.items() if value is not None})
    if row["flow_node_type"] == USER_TASK and "userTaskConfig" not in item:
        item["userTaskConfig"] = {"formFields": []}
    return item


def start_answer(instance: Mapping[str, Any], end_event_id: str | None, snap: InstanceSnapshot) -> dict[str, Any]:
    """The answer to a start request: with the end event and its token when the caller waited for one."""
    answer: dict[str, Any] = {
        "processInstanceId": instance["process_instance_id"],
        "correlationId": instance["correlation_id"],
    }
    if end_event_id is not None:
        answer["endEventId"] = end_event_id
        token = snap.end_token
        for node in snap.flow_node_instances:
            if node.flow_node_id == end_event_id and node.state == "finished":
                token = node.end_token if node.end_token is not None else node.start_token
        answer["tokenPayload"] = token if token is not None else {}
    return answer


def task_event(row: Mapping[str, Any], *, current_token: Any = None) -> dict[str, Any]:
    """The EventMessage about a user task (a store row); ``current_token`` defaults to its start token."""
    message: dict[str, Any] = {
        "correlationId": row["correlation_id"],
        "processDefinitionId": row["process_definition_id"],
        "processModelId": row["process_model_id"],
        "processInstanceId": row["process_instance_id"],
        "ownerId": row["owner_id"],
        "currentToken": current_token if current_token is not None else row["start_token"],
        "flowNodeId": row["flow_node_id"],
        "flowNodeName": row["flow_node_name"],
        "flowNodeType": row["flow_node_type"],
        "flowNodeInstanceId": row["flow_node_instance_id"],
    }
    if row.get("flow_node_lane"):
        message["flowNodeLane"] = row["flow_node_lane"]
    if row.get("process_model_name"):
        message["processModelName"] = row["process_model_name"]
    if row.get("actual_owner_id"):
        message["actualOwnerId"] = row["actual_owner_id"]
    return message


def process_event(instance: Mapping[str, Any], snapshot: InstanceSnapshot) -> dict[str, Any]:
    """The EventMessage about a process instance that ended: finished, failed or terminated."""
    message: dict[str, Any] = {
        "correlationId": instance["correlation_id"],
        "processDefinitionId": instance["definition_id"],
        "processModelId": instance["process_model_id"],
        "processInstanceId": instance["process_instance_id"],
        "ownerId": instance["owner_id"],
        "currentToken": snapshot.end_token if snapshot.end_token is not None else {},
    }
    if snapshot.end_event_id:
        message["flowNodeId"] = snapshot.end_event_id
    if snapshot.error:
        message["error"] = snapshot.error
    return message
