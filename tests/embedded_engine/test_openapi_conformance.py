"""Every answer of the implemented paths matches the real engine's own OpenAPI document.

The document is the OpenAPI file a real ProcessCube engine serves as swagger. It is not part of this repository:
the tests skip unless it lies in ``../shared/reference/processcube-engine-openapi.json`` beside the checkout. A few
of its schemas use TypeScript instead of JSON Schema (``"type": "Record<string, any>"``, ``"Array<string> | string"``);
those are read as what they mean (an object, no constraint) and listed in :data:`TYPESCRIPT_TYPES`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import SHARED_PROCESSES
from tests.servers import EngineServer

OPENAPI_FILE = SHARED_PROCESSES.parent / "reference" / "processcube-engine-openapi.json"
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
TYPESCRIPT_TYPES = {"Record<string, any>": "object"}

pytestmark = pytest.mark.skipif(not OPENAPI_FILE.exists(), reason="shared/reference is not beside this checkout")


def _sanitize(node: Any) -> Any:
    if isinstance(node, dict):
        result = {key: _sanitize(value) for key, value in node.items() if key not in ("example", "required")}
        if isinstance(node.get("required"), list):
            result["required"] = node["required"]
        kind = node.get("type")
        if isinstance(kind, str) and kind not in JSON_TYPES:
            mapped = TYPESCRIPT_TYPES.get(kind)
            if mapped is None:
                result.pop("type")
            else:
                result["type"] = mapped
        return result
    if isinstance(node, list):
        return [_sanitize(item) for item in node]
    return node


# Where the real engine answers against its own document: a captured answer of a real engine (a waiting user task,
# 5minds/node-red-dashboard-2-processcube-dynamic-form ui/components/fields.json) has these string fields as null.
CAPTURED_NULLS = {"FlowNodeInstance": ("parentProcessInstanceId",)}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = _sanitize(json.loads(OPENAPI_FILE.read_text()))
    for schema_name, properties in CAPTURED_NULLS.items():
        for name in properties:
            prop = loaded["components"]["schemas"][schema_name]["properties"][name]
            prop["type"] = [prop["type"], "null"]
    return loaded


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any] | None:
    operation = document["paths"][path][method]
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {path} documents no {status} answer"
    content = response.get("content", {}).get("application/json")
    if content is None:
        return None
    schema: dict[str, Any] = content["schema"]
    return schema


def check(document: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    schema = response_schema(document, path, method, response.status_code)
    if schema is None:
        assert response.content == b"", f"{method.upper()} {path} should have no body"
        return
    validator = jsonschema.Draft7Validator({**schema, "components": document["components"]})
    errors = sorted(validator.iter_errors(response.json()), key=str)
    assert not errors, f"{method.upper()} {path}: {errors[0].message} at {list(errors[0].absolute_path)}"


@pytest.fixture
def engine(approval_engine: EngineServer) -> EngineServer:
    return approval_engine


def test_answers_match_the_engines_openapi_document(engine: EngineServer, document: dict[str, Any]) -> None:
    headers = engine.headers()
    with httpx.Client(base_url=engine.api, headers=headers, timeout=30) as http:
        check(document, "/info", "get", http.get("/info"))
        check(document, "/authority", "get", http.get("/authority"))
        check(document, "/process_models", "get", http.get("/process_models"))
        check(document, "/process_models/{processModelId}/", "get", http.get("/process_models/ApprovalProcess/"))
        check(document, "/process_definitions", "get", http.get("/process_definitions"))

        token = {"amount": 42, "customerType": "vip", "customerId": "C-9"}
        started = http.post("/process_models/ApprovalProcess/start", json={"initialToken": token, "returnOn": 1})
        check(document, "/process_models/{processModelId}/start", "post", started)
        instance_id = started.json()["processInstanceId"]

        tasks = http.get(
            "/flow_node_instances",
            params={"processInstanceId": instance_id, "flowNodeType": "bpmn:UserTask", "state": "suspended"},
        )
        check(document, "/flow_node_instances", "get", tasks)
        task_id = tasks.json()["flowNodeInstances"][0]["flowNodeInstanceId"]

        reserved = http.put(f"/user_tasks/{task_id}/reserve", json={"actualOwnerId": "dummy_token"})
        check(document, "/user_tasks/{userTaskInstanceId}/reserve", "put", reserved)
        cancelled = http.delete(f"/user_tasks/{task_id}/cancel-reservation")
        check(document, "/user_tasks/{userTaskInstanceId}/cancel-reservation", "delete", cancelled)
        finished = http.put(f"/user_tasks/{task_id}/finish", json={"approved": True, "comment": "ok"})
        check(document, "/user_tasks/{userTaskInstanceId}/finish", "put", finished)

        everything = http.get("/flow_node_instances", params={"processInstanceId": instance_id})
        check(document, "/flow_node_instances", "get", everything)
        assert len(everything.json()["flowNodeInstances"]) > 2

        instances = http.get("/process_instances/query", params={"processInstanceId": instance_id})
        check(document, "/process_instances/query", "get", instances)
        terminated = http.put(f"/process_instances/{instance_id}/terminate")
        check(document, "/process_instances/{processInstanceId}/terminate", "put", terminated)
        check(document, "/process_instances/query", "get", http.get("/process_instances/query"))
