"""The embedded engine over real HTTP: what any client written for the real ProcessCube engine relies on."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, SHARED_PROCESSES, EngineFactory
from tests.servers import DUMMY_TOKEN, EngineServer

ISO_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def token_for(engine: EngineServer, client_id: str, secret: str) -> str:
    return engine.token(client_id, secret)


def put(engine: EngineServer, path: str, body: Any = None, token: str = DUMMY_TOKEN) -> httpx.Response:
    return httpx.put(engine.api + path, json=body, headers=engine.headers(token))


def finish(engine: EngineServer, task_id: str, result: Any, token: str = DUMMY_TOKEN) -> httpx.Response:
    return put(engine, f"/user_tasks/{task_id}/finish", result, token)


def reserve(engine: EngineServer, task_id: str, owner: str, token: str = DUMMY_TOKEN) -> httpx.Response:
    return put(engine, f"/user_tasks/{task_id}/reserve", {"actualOwnerId": owner}, token)


def cancel(engine: EngineServer, task_id: str, token: str = DUMMY_TOKEN) -> httpx.Response:
    return httpx.delete(f"{engine.api}/user_tasks/{task_id}/cancel-reservation", headers=engine.headers(token))


def assert_engine_error(response: httpx.Response, status: int, class_name: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == status
    assert body["errorClassName"] == class_name
    assert body["message"]
    return body


def approval_task(engine: EngineServer, token: dict[str, Any]) -> dict[str, Any]:
    started = engine.start_instance("ApprovalProcess", token)
    tasks = engine.user_tasks(processInstanceId=started["processInstanceId"])
    assert len(tasks) == 1
    return tasks[0]


def instance(engine: EngineServer, process_instance_id: str) -> dict[str, Any]:
    return engine.process_instance(process_instance_id)


# -- deploy --------------------------------------------------------------------------------------------------


def test_every_example_and_studio_model_deploys(engine_server: EngineServer) -> None:
    paths = sorted(EXAMPLES.glob("*.bpmn")) + sorted(SHARED_PROCESSES.glob("*.bpmn"))
    assert len(paths) >= 3
    for path in paths:
        engine_server.deploy_file(path)
    models = httpx.get(engine_server.api + "/process_models", headers=engine_server.headers()).json()
    ids = {model["processModelId"] for model in models["processModels"]}
    assert {"ApprovalProcess"} <= ids
    assert models["totalCount"] == len(models["processModels"])
    approval = httpx.get(engine_server.api + "/process_models/ApprovalProcess", headers=engine_server.headers())
    assert approval.json()["isExecutable"] is True
    assert approval.json()["startEvents"]


def test_malformed_xml_is_refused_with_the_line_number(engine_server: EngineServer) -> None:
    xml = '<?xml version="1.0"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">\n<oops\n'
    response = httpx.post(
        engine_server.api + "/process_definitions", json={"xml": xml}, headers=engine_server.headers()
    )
    body = assert_engine_error(response, 400, "BadRequestError")
    assert "line" in body["message"]
    assert body["additionalInformation"]["line"] >= 3


def test_redeploying_a_changed_definition_without_overwrite_is_a_conflict(
    approval_engine: EngineServer,
) -> None:
    path = next(p for p in EXAMPLES.glob("*.bpmn") if 'id="ApprovalProcess"' in p.read_text())
    xml = path.read_text().replace("</bpmn:definitions>", "<!-- changed --></bpmn:definitions>")
    response = httpx.post(
        approval_engine.api + "/process_definitions",
        json={"xml": xml, "overwriteExisting": False},
        headers=approval_engine.headers(),
    )
    assert_engine_error(response, 409, "ConflictError")
    approval_engine.deploy(xml, overwrite=True)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be an object"),
        (b'{"xml": 42}', "'xml'"),
    ],
)
def test_bad_deploy_bodies_are_bad_requests(engine_server: EngineServer, body: bytes, expected: str) -> None:
    response = httpx.post(
        engine_server.api + "/process_definitions",
        content=body,
        headers={**engine_server.headers(), "Content-Type": "application/json"},
    )
    assert expected in assert_engine_error(response, 400, "BadRequestError")["message"]


# -- user tasks ----------------------------------------------------------------------------------------------


def test_a_waiting_user_task_carries_every_field_of_the_contract(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 1500, "customerType": "vip", "customerId": "C-1"})
    assert task["flowNodeType"] == "bpmn:UserTask"
    assert task["state"] == "suspended"
    assert task["processModelId"] == "ApprovalProcess"
    assert task["startToken"] == {"amount": 1500, "customerType": "vip", "customerId": "C-1"}
    assert task["flowNodeName"]
    assert task["flowNodeLane"] == "Approver"
    assert ISO_TIMESTAMP.match(task["startedAt"])
    # null while without a value, as a captured answer of the real engine has them; endToken {} while waiting
    assert task["actualOwnerId"] is None
    assert task["finishedByUserId"] is None
    assert task["assignedUserIds"] is None
    assert task["parentProcessInstanceId"] is None
    assert task["tokens"] == []
    assert task["endToken"] == {}
    assert "finishedAt" not in task
    assert task["userTaskConfigModel"] == task["userTaskConfig"]
    fields = {field["id"]: field for field in task["userTaskConfig"]["formFields"]}
    assert fields["approved"]["type"] == "boolean"
    assert fields["approved"]["label"]
    for field in fields.values():
        assert ("enumValues" in field) == (field["type"] == "enum")
        assert None not in field.values()


def test_approved_order_goes_down_the_approved_branch_with_token_history(
    approval_engine: EngineServer,
) -> None:
    task = approval_task(approval_engine, {"amount": 500, "customerType": "regular", "customerId": "C-2"})
    assert finish(approval_engine, task["flowNodeInstanceId"], {"approved": True, "comment": "ok"}).status_code == 204

    done = approval_engine.user_tasks(state="finished", flowNodeInstanceId=task["flowNodeInstanceId"])[0]
    assert done["endToken"] == {"approved": True, "comment": "ok"}
    assert done["finishedByUserId"] == "dummy_token"
    assert ISO_TIMESTAMP.match(done["finishedAt"])
    following = approval_engine.user_tasks(processInstanceId=task["processInstanceId"])
    assert len(following) == 1
    assert following[0]["flowNodeId"] != task["flowNodeId"]
    assert following[0]["startToken"] == {"approved": True, "comment": "ok"}
    assert following[0]["previousFlowNodeInstanceId"]


def test_rejected_order_goes_down_the_other_branch(approval_engine: EngineServer) -> None:
    approved = approval_task(approval_engine, {"amount": 1, "customerType": "regular", "customerId": "a"})
    rejected = approval_task(approval_engine, {"amount": 2, "customerType": "regular", "customerId": "b"})
    finish(approval_engine, approved["flowNodeInstanceId"], {"approved": True})
    finish(approval_engine, rejected["flowNodeInstanceId"], {"approved": False})
    after_approval = approval_engine.user_tasks(processInstanceId=approved["processInstanceId"])
    after_rejection = approval_engine.user_tasks(processInstanceId=rejected["processInstanceId"])
    assert [t["flowNodeId"] for t in after_approval] != [t["flowNodeId"] for t in after_rejection]


def test_walking_every_task_to_the_end_finishes_the_instance(approval_engine: EngineServer) -> None:
    started = approval_engine.start_instance("ApprovalProcess", {"amount": 5, "customerType": "x", "customerId": "c"})
    result: dict[str, Any] = {"approved": True, "comment": "fine"}
    for _ in range(10):
        tasks = approval_engine.user_tasks(processInstanceId=started["processInstanceId"])
        if not tasks:
            break
        for task in tasks:
            assert finish(approval_engine, task["flowNodeInstanceId"], result).status_code == 204
    found = instance(approval_engine, started["processInstanceId"])
    assert found["state"] == "finished"
    assert found["endEventId"]


def test_parallel_tasks_wait_side_by_side(approval_engine: EngineServer) -> None:
    parallel_model = next(path for path in EXAMPLES.glob("*.bpmn") if "parallelGateway" in path.read_text())
    model_id = re.search(r'<bpmn:process id="([^"]+)"', parallel_model.read_text())
    assert model_id is not None
    started = approval_engine.start_instance(model_id.group(1), {"employee": "Eve"})
    tasks = approval_engine.user_tasks(processInstanceId=started["processInstanceId"])
    assert len(tasks) >= 2
    for task in tasks:
        finish(approval_engine, task["flowNodeInstanceId"], {})
    assert instance(approval_engine, started["processInstanceId"])["state"] in ("running", "finished")


def test_a_reserved_task_can_only_be_finished_by_its_owner(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 1, "customerType": "r", "customerId": "c"})
    task_id = task["flowNodeInstanceId"]
    alice = token_for(approval_engine, "alice", "alice-secret")
    assert reserve(approval_engine, task_id, "someone-else").status_code == 204
    assert approval_engine.user_tasks(flowNodeInstanceId=task_id)[0]["actualOwnerId"] == "someone-else"

    refused = finish(approval_engine, task_id, {"approved": True}, token=alice)
    assert (
        assert_engine_error(refused, 409, "ConflictError")["additionalInformation"]["actualOwnerId"] == "someone-else"
    )
    assert_engine_error(reserve(approval_engine, task_id, "alice", token=alice), 409, "ConflictError")

    assert cancel(approval_engine, task_id).status_code == 204
    assert approval_engine.user_tasks(flowNodeInstanceId=task_id)[0]["actualOwnerId"] is None
    assert reserve(approval_engine, task_id, "alice", token=alice).status_code == 204
    assert finish(approval_engine, task_id, {"approved": True}, token=alice).status_code == 204


def test_a_finished_task_cannot_be_finished_again(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 1, "customerType": "r", "customerId": "c"})
    assert finish(approval_engine, task["flowNodeInstanceId"], {"approved": True}).status_code == 204
    second = finish(approval_engine, task["flowNodeInstanceId"], {"approved": True})
    body = assert_engine_error(second, 404, "NotFoundError")
    assert body["additionalInformation"]["state"] == "finished"


@pytest.mark.parametrize("action", ["finish", "reserve", "cancel"])
def test_unknown_task_ids_are_not_found(engine_server: EngineServer, action: str) -> None:
    task_id = "no-such-task"
    response = {
        "finish": lambda: finish(engine_server, task_id, {}),
        "reserve": lambda: reserve(engine_server, task_id, "me"),
        "cancel": lambda: cancel(engine_server, task_id),
    }[action]()
    assert_engine_error(response, 404, "NotFoundError")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{garbage", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_finish_with_a_body_that_is_not_an_object_is_a_bad_request(
    approval_engine: EngineServer, content: bytes, fragment: str
) -> None:
    task = approval_task(approval_engine, {"amount": 1, "customerType": "r", "customerId": "c"})
    response = httpx.put(
        f"{approval_engine.api}/user_tasks/{task['flowNodeInstanceId']}/finish",
        content=content,
        headers={**approval_engine.headers(), "Content-Type": "application/json"},
    )
    assert fragment in assert_engine_error(response, 400, "BadRequestError")["message"]
    assert approval_engine.user_tasks(flowNodeInstanceId=task["flowNodeInstanceId"])[0]["state"] == "suspended"


def test_reserve_without_an_owner_is_a_bad_request(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 1, "customerType": "r", "customerId": "c"})
    response = put(approval_engine, f"/user_tasks/{task['flowNodeInstanceId']}/reserve", {"owner": "x"})
    assert_engine_error(response, 400, "BadRequestError")


def test_oversized_bodies_are_refused(engine_factory_small_bodies: EngineServer) -> None:
    engine = engine_factory_small_bodies
    response = httpx.post(
        engine.api + "/process_definitions",
        content=b'{"xml": "' + b"x" * 5000 + b'"}',
        headers={**engine.headers(), "Content-Type": "application/json"},
    )
    assert_engine_error(response, 413, "PayloadTooLargeError")


@pytest.fixture
def engine_factory_small_bodies(engine_server_factory: EngineFactory) -> EngineServer:
    return engine_server_factory(extra_args=["--max-body-bytes", "1024"])


# -- queries -------------------------------------------------------------------------------------------------


def test_filters_take_comma_joined_values_and_page_and_sort(approval_engine: EngineServer) -> None:
    ids = [
        approval_engine.start_instance("ApprovalProcess", {"amount": n, "customerType": "r", "customerId": str(n)})[
            "processInstanceId"
        ]
        for n in range(5)
    ]
    params = {
        "flowNodeType": "bpmn:UserTask",
        "state": "suspended",
        "processInstanceId": ",".join(ids[:3]),
        "limit": "2",
        "offset": "0",
        "includeCount": "true",
        "sortSettings": json.dumps({"sortBy": "createdAt", "sortDir": "DESC"}),
    }
    first = httpx.get(approval_engine.api + "/flow_node_instances", params=params, headers=approval_engine.headers())
    assert first.status_code == 200
    body = first.json()
    assert body["totalCount"] == 3
    assert [t["processInstanceId"] for t in body["flowNodeInstances"]] == [ids[2], ids[1]]
    second = httpx.get(
        approval_engine.api + "/flow_node_instances",
        params={**params, "offset": "2"},
        headers=approval_engine.headers(),
    ).json()
    assert [t["processInstanceId"] for t in second["flowNodeInstances"]] == [ids[0]]
    assert approval_engine.user_tasks(processInstanceId=ids[4], limit=0)[0]["processInstanceId"] == ids[4]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "ten"},
        {"offset": "-1"},
        {"state": "sleeping"},
        {"sortSettings": "{nope"},
        {"sortSettings": json.dumps({"sortBy": "password", "sortDir": "ASC"})},
        {"includeCount": "maybe"},
    ],
)
def test_bad_query_parameters_are_bad_requests(engine_server: EngineServer, params: dict[str, str]) -> None:
    response = httpx.get(engine_server.api + "/flow_node_instances", params=params, headers=engine_server.headers())
    assert_engine_error(response, 400, "BadRequestError")


def test_unknown_routes_and_methods_answer_in_the_engine_error_shape(engine_server: EngineServer) -> None:
    assert_engine_error(
        httpx.get(engine_server.api + "/user_tasks", headers=engine_server.headers()), 404, "NotFoundError"
    )
    response = httpx.post(engine_server.api + "/flow_node_instances", headers=engine_server.headers())
    assert response.status_code == 405


# -- process instances ---------------------------------------------------------------------------------------


def test_start_can_wait_for_the_end(engine_server: EngineServer) -> None:
    engine_server.deploy(NO_TASK_MODEL)
    response = httpx.post(
        f"{engine_server.api}/process_models/Straight/start",
        json={"returnOn": 2, "initialToken": {"n": 1}, "correlationId": "corr-1"},
        headers=engine_server.headers(),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["correlationId"] == "corr-1"
    assert body["endEventId"] == "End"
    assert body["tokenPayload"] == {"n": 1}
    response = httpx.post(
        f"{engine_server.api}/process_models/Straight/start",
        json={"returnOn": 3, "endEventId": "End"},
        headers=engine_server.headers(),
    )
    assert response.json()["endEventId"] == "End"


def test_start_and_end_events_named_like_spiffworkflow_internals_work(engine_server: EngineServer) -> None:
    engine_server.deploy(NO_TASK_MODEL)
    model = httpx.get(engine_server.api + "/process_models/Straight", headers=engine_server.headers()).json()
    assert [event["id"] for event in model["startEvents"]] == ["Start"]
    assert [event["id"] for event in model["endEvents"]] == ["End"]


def test_unknown_process_model_is_not_found(engine_server: EngineServer) -> None:
    response = httpx.post(f"{engine_server.api}/process_models/Nope/start", json={}, headers=engine_server.headers())
    assert_engine_error(response, 404, "NotFoundError")


def test_terminating_an_instance_terminates_its_waiting_tasks(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 1, "customerType": "r", "customerId": "c"})
    response = put(approval_engine, f"/process_instances/{task['processInstanceId']}/terminate")
    assert response.status_code == 204
    assert instance(approval_engine, task["processInstanceId"])["state"] == "terminated"
    terminated = approval_engine.user_tasks(state="terminated", flowNodeInstanceId=task["flowNodeInstanceId"])
    assert len(terminated) == 1
    assert_engine_error(finish(approval_engine, task["flowNodeInstanceId"], {}), 404, "NotFoundError")


def test_a_failing_condition_puts_the_instance_in_error_and_the_server_keeps_serving(
    engine_server: EngineServer,
) -> None:
    engine_server.deploy(FAILING_CONDITION_MODEL)
    started = engine_server.start_instance("Failing", {"x": 1})
    found = instance(engine_server, started["processInstanceId"])
    assert found["state"] == "error"
    message = json.dumps(found["error"])
    assert "Flow_bad" in message
    assert "token.current.missing.deeper" in message
    assert httpx.get(engine_server.api + "/info").status_code == 200


# -- persistence ---------------------------------------------------------------------------------------------


def test_a_restart_keeps_models_instances_tasks_and_reservations(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 9, "customerType": "vip", "customerId": "c"})
    reserve(approval_engine, task["flowNodeInstanceId"], "dummy_token")
    other = approval_task(approval_engine, {"amount": 10, "customerType": "vip", "customerId": "d"})
    finish(approval_engine, other["flowNodeInstanceId"], {"approved": True})
    before = httpx.get(approval_engine.api + "/flow_node_instances", headers=approval_engine.headers()).json()

    approval_engine.kill()
    approval_engine.start()

    after = httpx.get(approval_engine.api + "/flow_node_instances", headers=approval_engine.headers()).json()
    assert after == before
    assert finish(approval_engine, task["flowNodeInstanceId"], {"approved": False}).status_code == 204
    assert approval_engine.user_tasks(processInstanceId=task["processInstanceId"])


# -- identity ------------------------------------------------------------------------------------------------


def test_without_anonymous_access_the_dummy_token_is_refused(engine_server_factory: EngineFactory) -> None:
    engine = engine_server_factory(anonymous=False)
    response = httpx.get(engine.api + "/flow_node_instances", headers=engine.headers())
    assert_engine_error(response, 401, "UnauthorizedError")
    assert_engine_error(httpx.get(engine.api + "/flow_node_instances"), 401, "UnauthorizedError")
    worker = token_for(engine, "user-task-worker", "secret-key")
    assert httpx.get(engine.api + "/flow_node_instances", headers=engine.headers(worker)).status_code == 200
    assert httpx.get(engine.api + "/authority").json() == engine.authority_url


def test_a_tampered_token_is_unauthorized(engine_server: EngineServer) -> None:
    worker = token_for(engine_server, "user-task-worker", "secret-key")
    tampered = worker[:-4] + ("AAAA" if not worker.endswith("AAAA") else "BBBB")
    response = httpx.get(engine_server.api + "/flow_node_instances", headers=engine_server.headers(tampered))
    assert_engine_error(response, 401, "UnauthorizedError")


def test_tasks_in_a_lane_are_visible_only_with_the_lane_claim(approval_engine: EngineServer) -> None:
    task = approval_task(approval_engine, {"amount": 3, "customerType": "r", "customerId": "c"})
    assert task["flowNodeLane"] == "Approver"
    alice = token_for(approval_engine, "alice", "alice-secret")  # has the Approver claim
    bob = token_for(approval_engine, "bob", "bob-secret")  # has not
    ids = {"flowNodeInstanceId": task["flowNodeInstanceId"]}
    assert len(approval_engine.user_tasks(token=alice, **ids)) == 1
    assert approval_engine.user_tasks(token=bob, **ids) == []
    assert_engine_error(finish(approval_engine, task["flowNodeInstanceId"], {}, token=bob), 404, "NotFoundError")
    assert_engine_error(reserve(approval_engine, task["flowNodeInstanceId"], "bob", token=bob), 404, "NotFoundError")


def test_a_read_only_client_cannot_write(approval_engine: EngineServer) -> None:
    carol = token_for(approval_engine, "carol", "carol-secret")
    response = httpx.post(
        approval_engine.api + "/process_models/ApprovalProcess/start",
        json={},
        headers=approval_engine.headers(carol),
    )
    assert_engine_error(response, 403, "ForbiddenError")


# -- models used above ---------------------------------------------------------------------------------------

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="{defs}" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)

NO_TASK_MODEL = (
    _HEAD.format(defs="Straight_Definition")
    + """<bpmn:process id="Straight" name="Straight" isExecutable="true">
    <bpmn:startEvent id="Start" name="Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Start" targetRef="End" />
    <bpmn:endEvent id="End" name="End"><bpmn:incoming>Flow_1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
)

FAILING_CONDITION_MODEL = (
    _HEAD.format(defs="Failing_Definition")
    + """<bpmn:process id="Failing" name="Failing" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>Flow_in</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="Flow_in" sourceRef="StartEvent_1" targetRef="Gateway_1" />
    <bpmn:exclusiveGateway id="Gateway_1">
      <bpmn:incoming>Flow_in</bpmn:incoming><bpmn:outgoing>Flow_bad</bpmn:outgoing><bpmn:outgoing>Flow_ok</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="Flow_bad" sourceRef="Gateway_1" targetRef="EndEvent_1">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        >token.current.missing.deeper === 1</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="Flow_ok" sourceRef="Gateway_1" targetRef="EndEvent_1">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">false</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="EndEvent_1">
      <bpmn:incoming>Flow_bad</bpmn:incoming><bpmn:incoming>Flow_ok</bpmn:incoming>
    </bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""
)


def test_with_anonymous_access_a_request_without_a_token_is_the_anonymous_user(approval_engine: EngineServer) -> None:
    approval_task(approval_engine, {"amount": 1, "customerType": "r", "customerId": "c"})
    response = httpx.get(
        approval_engine.api + "/flow_node_instances", params={"flowNodeType": "bpmn:UserTask", "state": "suspended"}
    )
    assert response.status_code == 200
    assert response.json()["totalCount"] == 1
