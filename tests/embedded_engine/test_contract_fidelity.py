"""The embedded engine answers as the real ProcessCube engine does, item by item.

Each expectation names its source: the official Python client (processcube-client 6.1.2), the official TypeScript
client and SDK (@5minds/processcube_engine_client 6.1.4, @5minds/processcube_engine_sdk 7.1.2) or a captured answer
of a real engine (5minds/node-red-dashboard-2-processcube-dynamic-form, ``ui/components/fields.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest

from gateway.engine import UserTaskClient, UserTaskEvent
from tests.servers import DUMMY_TOKEN, EngineServer

pytestmark = pytest.mark.integration

PROCESS = "Fidelity_Process"
TASK = "Task_Review"
TOKEN = {"name": "Ada", "factor": 21}
DUMMY_TOKEN_USER = "dummy_token"

MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Fidelity_Definition"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="Fidelity_Process" name="Fidelity" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Task_Review" />
    <bpmn:userTask id="Task_Review" name="Review">
      <bpmn:documentation>Documentation is not the description</bpmn:documentation>
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="amount" label="Amount for ${token.current.name}" type="long"
              defaultValue="${token.current.sample}" customForm='{"hint":"${token.current.name}"}' />
          <camunda:formField id="choice" label="Choice" type="enum">
            <camunda:value id="a" name="A x${token.history.StartEvent_1.factor * 2}" />
          </camunda:formField>
          <camunda:formField id="broken" label="Oops ${token.current.missing.deeper}" type="string" />
        </camunda:formData>
        <camunda:properties>
          <camunda:property name="description" value="Please review ${token.current.name}" />
          <camunda:property name="finishedMessage" value="Thanks" />
          <camunda:property name="customForm" value="DynamicForm" />
          <camunda:property name="engine.assignUserIds" value="${['alice', token.current.name]}" />
        </camunda:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Review" targetRef="EndEvent_1" />
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""

# The keys of the captured waiting user task, in its order.
CAPTURED_KEYS = [
    "flowNodeInstanceId",
    "flowNodeId",
    "flowNodeName",
    "flowNodeLane",
    "flowNodeType",
    "previousFlowNodeInstanceId",
    "parentProcessInstanceId",
    "processDefinitionId",
    "processModelId",
    "processInstanceId",
    "correlationId",
    "state",
    "tokens",
    "startToken",
    "endToken",
    "ownerId",
    "startedAt",
    "assignedUserIds",
    "actualOwnerId",
    "finishedByUserId",
    "userTaskConfig",
    "userTaskConfigModel",
]


@pytest.fixture
def engine(engine_server: EngineServer) -> EngineServer:
    engine_server.deploy(MODEL)
    return engine_server


def get(engine: EngineServer, path: str, token: str = DUMMY_TOKEN, **params: Any) -> httpx.Response:
    return httpx.get(engine.api + path, params=params, headers=engine.headers(token), timeout=30)


def user_token(engine: EngineServer, client_id: str) -> str:
    """A token of one of the engine's development clients (``alice``, ``bob``, ``carol``: secret ``<id>-secret``)."""
    discovery = httpx.get(engine.authority_url + "/.well-known/openid-configuration").json()
    response = httpx.post(
        discovery["token_endpoint"],
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": f"{client_id}-secret"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def waiting_task(engine: EngineServer, token: dict[str, Any] | None = None) -> dict[str, Any]:
    started = engine.start_instance(PROCESS, token if token is not None else TOKEN)
    (task,) = engine.user_tasks(processInstanceId=started["processInstanceId"])
    return task


# -- GET /info -------------------------------------------------------------------------------------------------


def test_info_carries_an_id_that_survives_a_restart_and_satisfies_the_python_client(engine: EngineServer) -> None:
    from processcube_client.core.api.helpers.application_info import ApplicationInfo  # type: ignore[import-untyped]

    info = get(engine, "/info").json()
    assert isinstance(info["id"], str)
    assert info["id"]
    parsed = ApplicationInfo.from_dict(info)  # the official Python client: KeyError 'id' without one
    assert parsed.id == info["id"]
    assert parsed.authority_url == info["authorityUrl"]
    assert get(engine, "/info").json()["id"] == info["id"]
    engine.restart()
    assert get(engine, "/info").json()["id"] == info["id"]


# -- the user task's configuration -------------------------------------------------------------------------------


def test_the_user_task_config_is_evaluated_against_the_token_and_the_model_rides_along(engine: EngineServer) -> None:
    task = waiting_task(engine)
    config = task["userTaskConfig"]
    fields = {field["id"]: field for field in config["formFields"]}
    assert fields["amount"]["label"] == "Amount for Ada"
    # the captured answer: a modelled "${token.current.sample}" on a token without it reads "undefined"
    assert fields["amount"]["defaultValue"] == "undefined"
    assert json.loads(fields["amount"]["customForm"]) == {"hint": "Ada"}
    assert fields["choice"]["enumValues"] == [{"id": "a", "name": "A x42"}]
    # a failing expression keeps its text as modelled; the instance runs on
    assert fields["broken"]["label"] == "Oops ${token.current.missing.deeper}"
    assert task["state"] == "suspended"
    # camunda:property entries (5Minds Studio), not bpmn:documentation
    assert config["description"] == "Please review Ada"
    assert config["finishedMessage"] == "Thanks"
    assert config["customForm"] == "DynamicForm"
    assert config["assignedUserIds"] == ["alice", "Ada"]
    assert task["assignedUserIds"] == ["alice", "Ada"]

    model = task["userTaskConfigModel"]  # as modelled: what the App SDK's mapUserTask reads beside the config
    model_fields = {field["id"]: field for field in model["formFields"]}
    assert model_fields["amount"]["label"] == "Amount for ${token.current.name}"
    assert model_fields["amount"]["defaultValue"] == "${token.current.sample}"
    assert model["description"] == "Please review ${token.current.name}"
    assert model["assignedUserIds"] == "${['alice', token.current.name]}"
    assert [field["id"] for field in model["formFields"]] == [field["id"] for field in config["formFields"]]


def test_a_config_is_evaluated_per_instance(engine: EngineServer) -> None:
    first = waiting_task(engine, {"name": "Ada", "factor": 1})
    second = waiting_task(engine, {"name": "Grace", "factor": 2})
    assert first["userTaskConfig"]["description"] == "Please review Ada"
    assert second["userTaskConfig"]["description"] == "Please review Grace"
    assert second["assignedUserIds"] == ["alice", "Grace"]


def test_a_task_without_expressions_has_equal_config_and_model(engine_server: EngineServer) -> None:
    engine_server.deploy(MODEL.replace("${", "$ {").replace("Fidelity_", "Plain_"))
    started = engine_server.start_instance("Plain_Process", TOKEN)
    (task,) = engine_server.user_tasks(processInstanceId=started["processInstanceId"])
    assert task["userTaskConfigModel"]["description"] == task["userTaskConfig"]["description"]
    # without an expression, engine.assignUserIds is a comma-separated list (our reading)
    assert task["userTaskConfig"]["assignedUserIds"] == ["$ {['alice'", "token.current.name]}"]


# -- the flow node instance's shape ------------------------------------------------------------------------------


def test_a_waiting_user_task_has_the_shape_of_the_captured_answer(engine: EngineServer) -> None:
    task = waiting_task(engine)
    assert [key for key in task if key in CAPTURED_KEYS] == [key for key in CAPTURED_KEYS if key in task]
    missing = set(CAPTURED_KEYS) - set(task)
    assert missing == {"flowNodeLane"}  # the model has no lanes: left out, as the SDK's type has it optional
    assert task["parentProcessInstanceId"] is None
    assert task["actualOwnerId"] is None
    assert task["finishedByUserId"] is None
    assert task["tokens"] == []
    assert task["endToken"] == {}
    assert task["startToken"] == TOKEN


def test_a_finished_user_task_and_other_flow_nodes(engine: EngineServer) -> None:
    task = waiting_task(engine)
    finished = httpx.put(
        f"{engine.api}/user_tasks/{task['flowNodeInstanceId']}/finish", json={"amount": 3}, headers=engine.headers()
    )
    assert finished.status_code == 204
    nodes = get(engine, "/flow_node_instances", processInstanceId=task["processInstanceId"]).json()
    by_id = {node["flowNodeId"]: node for node in nodes["flowNodeInstances"]}
    done = by_id[TASK]
    assert done["state"] == "finished"
    assert done["endToken"] == {"amount": 3}
    assert done["finishedByUserId"] == DUMMY_TOKEN_USER
    assert done["userTaskConfig"]["description"] == "Please review Ada"
    start = by_id["StartEvent_1"]
    assert start["parentProcessInstanceId"] is None
    assert start["tokens"] == []
    for user_task_key in ("actualOwnerId", "finishedByUserId", "assignedUserIds", "userTaskConfig"):
        assert user_task_key not in start


# -- query parameters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/flow_node_instances", "/process_instances/query"])
def test_an_unknown_query_parameter_is_a_400_naming_it(engine: EngineServer, path: str) -> None:
    engine.start_instance(PROCESS, TOKEN)
    response = get(engine, path, processModelIdd="nope")
    assert response.status_code == 400
    assert response.json()["errorClassName"] == "BadRequestError"
    assert "'processModelIdd'" in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/flow_node_instances", "triggeredByFlowNodeInstance"),
        ("/process_instances/query", "updatedAfter"),
        ("/process_instances/query", "startToken"),
    ],
)
def test_a_parameter_of_the_real_engine_this_one_cannot_honour_is_a_400_saying_so(
    engine: EngineServer, path: str, name: str
) -> None:
    response = get(engine, path, **{name: "x"})
    assert response.status_code == 400
    assert f"'{name}' is not supported" in response.json()["message"]


def test_a_search_query_object_is_refused_rather_than_matched_literally(engine: EngineServer) -> None:
    search = json.dumps({"operator": "or", "searchParams": ["Fidelity_Process"]})
    response = get(engine, "/process_instances/query", processModelId=search)
    assert response.status_code == 400
    assert "search queries" in response.json()["message"]


def test_what_the_official_clients_send_by_default_is_accepted(engine: EngineServer) -> None:
    for _ in range(3):
        engine.start_instance(PROCESS, TOKEN)
    # the Python client's ProcessInstanceQueryRequest: offset=0&limit=-1 (no limit)
    python = get(engine, "/process_instances/query", offset="0", limit="-1").json()
    assert python["totalCount"] == 3
    assert len(python["processInstances"]) == 3
    # the TypeScript client's query(): includeCount and includeXml always
    typescript = get(engine, "/process_instances/query", includeCount="true", includeXml="false").json()
    assert len(typescript["processInstances"]) == 3
    assert "xml" not in typescript["processInstances"][0]
    with_xml = get(engine, "/process_instances/query", includeXml="true", limit="1").json()
    assert with_xml["processInstances"][0]["xml"] == MODEL
    nodes = get(engine, "/flow_node_instances", flowNodeType="bpmn:UserTask", includeCount="true", limit="-1").json()
    assert len(nodes["flowNodeInstances"]) == 3
    for path in ("/process_definitions", "/process_models"):
        assert get(engine, path, limit="-1").status_code == 200
    assert get(engine, "/flow_node_instances", limit="-2").status_code == 400


def test_process_instances_are_sorted_and_filtered_by_time(engine: EngineServer) -> None:
    ids = [engine.start_instance(PROCESS, TOKEN)["processInstanceId"] for _ in range(3)]

    def listed(**params: Any) -> list[str]:
        response = get(engine, "/process_instances/query", **params)
        assert response.status_code == 200, response.text
        return [item["processInstanceId"] for item in response.json()["processInstances"]]

    newest_first = json.dumps({"sortBy": "createdAt", "sortDir": "DESC"})
    assert listed(sortSettings=newest_first) == ids[::-1]
    assert listed(sortSettings=json.dumps({"sortBy": "createdAt"})) == ids
    assert listed(sortSettings=newest_first, limit="1") == [ids[-1]]
    bad = get(engine, "/process_instances/query", sortSettings=json.dumps({"sortBy": "flowNodeLane"}))
    assert bad.status_code == 400

    items = get(engine, "/process_instances/query").json()["processInstances"]
    first_created = items[0]["createdAt"]
    assert set(listed(createdAfter=first_created)) <= set(ids[1:])
    assert listed(createdBefore="2000-01-01T00:00:00Z") == []
    assert listed(createdAfter="2000-01-01") == ids
    assert get(engine, "/process_instances/query", createdAfter="yesterday").status_code == 400
    assert listed(processModelHash=items[0]["hash"]) == ids


# -- cancelling a reservation ------------------------------------------------------------------------------------


def test_anyone_who_may_act_on_a_task_may_cancel_its_reservation_but_only_the_owner_finishes_it(
    engine: EngineServer,
) -> None:
    task_id = waiting_task(engine)["flowNodeInstanceId"]
    alice, bob = user_token(engine, "alice"), user_token(engine, "bob")
    reserve = httpx.put(
        f"{engine.api}/user_tasks/{task_id}/reserve", json={"actualOwnerId": "alice"}, headers=engine.headers(alice)
    )
    assert reserve.status_code == 204
    finish_by_bob = httpx.put(f"{engine.api}/user_tasks/{task_id}/finish", json={}, headers=engine.headers(bob))
    assert finish_by_bob.status_code == 409
    cancel_by_bob = httpx.delete(f"{engine.api}/user_tasks/{task_id}/cancel-reservation", headers=engine.headers(bob))
    assert cancel_by_bob.status_code == 204
    assert engine.user_tasks(flowNodeInstanceId=task_id)[0]["actualOwnerId"] is None
    carol = user_token(engine, "carol")  # read only: no cancelling
    response = httpx.delete(f"{engine.api}/user_tasks/{task_id}/cancel-reservation", headers=engine.headers(carol))
    assert response.status_code == 403


# -- event names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["socketio", "long_polling"])
async def test_the_gateway_client_hears_process_events_on_either_transport(engine: EngineServer, mode: str) -> None:
    received: list[UserTaskEvent] = []

    async def pump(stream: Any) -> None:
        async for event in stream:
            received.append(event)

    async with UserTaskClient(engine.url) as client, client.user_task_events(["process_ended"], mode=mode) as stream:  # type: ignore[arg-type]
        pumping = asyncio.ensure_future(pump(stream))
        try:
            for _ in range(100):
                if stream.connects:
                    break
                await asyncio.sleep(0.05)
            ended: list[UserTaskEvent] = []
            for _attempt in range(5):  # long polling hears only what happens while a poll is in flight
                task = await asyncio.to_thread(waiting_task, engine)
                await client.finish_user_task(task["flowNodeInstanceId"], {})
                for _ in range(100):
                    ended = [e for e in received if e.process_instance_id == task["processInstanceId"]]
                    if ended:
                        break
                    await asyncio.sleep(0.05)
                if ended:
                    break
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
    assert [event.name for event in ended] == ["process_ended"]


def test_the_gateway_reads_a_waiting_task_with_nulls_and_an_empty_end_token_as_without_a_result() -> None:
    from gateway.adapters.client_engine import task_from_client
    from gateway.engine.wire import task_from_wire

    waiting = {
        "flowNodeInstanceId": "fni-1",
        "flowNodeId": "Task_1",
        "flowNodeName": "Task",
        "flowNodeType": "bpmn:UserTask",
        "previousFlowNodeInstanceId": "fni-0",
        "parentProcessInstanceId": None,
        "processDefinitionId": "Definition_1",
        "processModelId": "Process_1",
        "processInstanceId": "pi-1",
        "correlationId": "corr-1",
        "state": "suspended",
        "tokens": [],
        "startToken": {},
        "endToken": {},
        "ownerId": "dummy_token",
        "startedAt": "2024-06-16T19:18:38.580Z",
        "assignedUserIds": None,
        "actualOwnerId": None,
        "finishedByUserId": None,
        "userTaskConfig": {"formFields": [{"id": "n", "label": "N", "type": "long", "defaultValue": "undefined"}]},
        "userTaskConfigModel": {"formFields": [{"id": "n", "label": "N", "type": "long", "defaultValue": "${x}"}]},
    }
    task = task_from_client(task_from_wire(waiting))
    assert task.result is None
    assert task.reserved_for is None
    assert task.finished_by is None
    assert task.form_fields[0].default_value == "undefined"
    finished = task_from_client(task_from_wire({**waiting, "state": "finished", "endToken": {"n": 1}}))
    assert finished.result == {"n": 1}
