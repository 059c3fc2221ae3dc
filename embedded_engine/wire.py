"""The engine's JSON: what it stores, rendered the way the real ProcessCube engine serializes it.

Pure functions from store rows (and BPMN snapshots) to the engine API's objects: process models, process
instances, flow node instances (user tasks among them), the answer to a start request, and the EventMessages of
notifications. They follow the real engine's habits, which clients rely on: camelCase keys, optional fields left
out rather than ``null`` except where a captured answer of the real engine shows ``null`` (see
:func:`flow_node_json`), ``{}`` where the engine sends an empty token (the gateway's ``gateway/engine/wire.py``
reads these shapes, from this engine or a real one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bpmn import FlowNodeDef, InstanceSnapshot, ProcessModelDef
from .bpmn.user_task_config import split_stored_config

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
    """A flow node instance as the real engine serializes it, in the key order of a captured answer.

    The capture (a waiting user task, 5minds/node-red-dashboard-2-processcube-dynamic-form
    ``ui/components/fields.json``) sends ``parentProcessInstanceId: null``, ``tokens: []`` and ``endToken: {}``,
    and for a user task ``assignedUserIds``, ``actualOwnerId`` and ``finishedByUserId`` as ``null`` while they
    have no value, ``userTaskConfig`` (evaluated) and ``userTaskConfigModel`` (as modelled). Keys it does not
    show (``flowNodeLane``, ``eventType``, ``previousFlowNodeInstanceId``, ``processModelName``, ``finishedAt``,
    ``error``) are left out without a value, as the SDK's types have them optional.
    """
    item: dict[str, Any] = {
        "flowNodeInstanceId": row["flow_node_instance_id"],
        "flowNodeId": row["flow_node_id"],
        "flowNodeName": row["flow_node_name"],
    }
    _put_optional(item, "flowNodeLane", row["flow_node_lane"])
    item["flowNodeType"] = row["flow_node_type"]
    _put_optional(item, "eventType", row["event_type"])
    _put_optional(item, "previousFlowNodeInstanceId", row["previous_flow_node_instance_id"])
    item["parentProcessInstanceId"] = row["parent_process_instance_id"]
    item["processDefinitionId"] = row["process_definition_id"]
    item["processModelId"] = row["process_model_id"]
    _put_optional(item, "processModelName", row["process_model_name"])
    item["processInstanceId"] = row["process_instance_id"]
    item["correlationId"] = row["correlation_id"]
    item["state"] = row["state"]
    item["tokens"] = []
    item["startToken"] = row["start_token"]
    item["endToken"] = row["end_token"] if row["end_token"] is not None else {}
    item["ownerId"] = row["owner_id"]
    item["startedAt"] = row["created_at"]
    _put_optional(item, "finishedAt", row["finished_at"])
    _put_optional(item, "error", row["error"])
    if row["flow_node_type"] == USER_TASK:
        config, model = split_stored_config(row["user_task_config"])
        assigned = config.get("assignedUserIds")
        item["assignedUserIds"] = assigned if isinstance(assigned, list) else None
        item["actualOwnerId"] = row["actual_owner_id"]
        item["finishedByUserId"] = row["finished_by_user_id"]
        item["userTaskConfig"] = config
        item["userTaskConfigModel"] = model
    return item


def _put_optional(item: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        item[key] = value


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
