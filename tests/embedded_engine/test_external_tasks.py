"""The external task API of the embedded engine over real HTTP, as the official workers use it.

fetch_and_lock (long polling, maxTasks, topic lists, payload filters), extend_lock, finish and error (a BPMN error
caught by a boundary event, a service error failing the instance), lock expiry and re-fetching, the payload
property, termination, and a restart of the engine. Models are written in 5Minds Studio's dialect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest

from tests.embedded_engine.bpmn._helpers import SHARED_PROCESSES, needs_real_models
from tests.servers import DUMMY_TOKEN, EngineServer

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
    ' xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="{defs}" targetNamespace="http://bpmn.io/schema/bpmn"'
    ' exporter="5Minds Studio" exporterVersion="1">\n'
)


def service_model(
    process_id: str,
    topic: str,
    *,
    properties: dict[str, str] | None = None,
    boundary_error_code: str | None = None,
    before: str = "",
) -> str:
    """start -> [optional script task] -> external service task -> end; an optional error boundary -> Failed."""
    props = ""
    if properties:
        items = "".join(f'<camunda:property name="{k}" value="{v}" />' for k, v in properties.items())
        props = f"<bpmn:extensionElements><camunda:properties>{items}</camunda:properties></bpmn:extensionElements>"
    error_def = ""
    boundary = ""
    if boundary_error_code is not None:
        error_def = f'<bpmn:error id="Error_1" name="Fachlich" errorCode="{boundary_error_code}" />'
        boundary = (
            '<bpmn:boundaryEvent id="Caught" name="Fachlicher Fehler" attachedToRef="Work">'
            '<bpmn:outgoing>f3</bpmn:outgoing><bpmn:errorEventDefinition id="Def_1" errorRef="Error_1" />'
            "</bpmn:boundaryEvent>"
            '<bpmn:sequenceFlow id="f3" sourceRef="Caught" targetRef="Failed" />'
            '<bpmn:endEvent id="Failed" name="Fehler"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>'
        )
    first = "Work"
    prelude = ""
    if before:
        first = "Prepare"
        prelude = (
            f'<bpmn:scriptTask id="Prepare" name="Vorbereiten" scriptFormat="javascript">'
            f"<bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f0b</bpmn:outgoing>{before}</bpmn:scriptTask>"
            '<bpmn:sequenceFlow id="f0b" sourceRef="Prepare" targetRef="Work" />'
        )
    work_incoming = "f0b" if before else "f0"
    return (
        HEAD.format(defs=f"Defs_{process_id}")
        + error_def
        + f'<bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">'
        + '<bpmn:startEvent id="Start" name="Start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
        + f'<bpmn:sequenceFlow id="f0" sourceRef="Start" targetRef="{first}" />'
        + prelude
        + f'<bpmn:serviceTask id="Work" name="Arbeiten" camunda:type="external" camunda:topic="{topic}">'
        + props
        + f"<bpmn:incoming>{work_incoming}</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:serviceTask>"
        + '<bpmn:sequenceFlow id="f1" sourceRef="Work" targetRef="Done" />'
        + '<bpmn:endEvent id="Done" name="Fertig"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>'
        + boundary
        + "</bpmn:process></bpmn:definitions>"
    )


def fetch(
    engine: EngineServer,
    topic: str | list[str],
    *,
    worker: str = "worker-a",
    max_tasks: int = 10,
    long_polling: int = 0,
    lock: int = 30000,
    token: str = DUMMY_TOKEN,
    **extra: Any,
) -> list[dict[str, Any]]:
    response = fetch_raw(
        engine, topic, worker=worker, max_tasks=max_tasks, long_polling=long_polling, lock=lock, token=token, **extra
    )
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()
    return tasks


def fetch_raw(
    engine: EngineServer,
    topic: str | list[str],
    *,
    worker: str = "worker-a",
    max_tasks: int = 10,
    long_polling: int = 0,
    lock: int = 30000,
    token: str = DUMMY_TOKEN,
    **extra: Any,
) -> httpx.Response:
    body = {
        "workerId": worker,
        "topicName": topic,
        "maxTasks": max_tasks,
        "longPollingTimeout": long_polling,
        "lockDuration": lock,
        **extra,
    }
    return httpx.post(
        engine.api + "/external_tasks/fetch_and_lock", json=body, headers=engine.headers(token), timeout=30
    )


def put(engine: EngineServer, path: str, body: Any) -> httpx.Response:
    return httpx.put(engine.api + path, json=body, headers=engine.headers(), timeout=30)


def finish(engine: EngineServer, task_id: str, result: Any, worker: str = "worker-a") -> httpx.Response:
    return put(engine, f"/external_tasks/{task_id}/finish", {"workerId": worker, "result": result})


def report_error(engine: EngineServer, task_id: str, error: dict[str, Any], worker: str = "worker-a") -> httpx.Response:
    return put(engine, f"/external_tasks/{task_id}/error", {"workerId": worker, "error": error})


def extend(engine: EngineServer, task_id: str, ms: int, worker: str = "worker-a") -> httpx.Response:
    return put(engine, f"/external_tasks/{task_id}/extend_lock", {"workerId": worker, "additionalDuration": ms})


def instance(engine: EngineServer, process_instance_id: str) -> dict[str, Any]:
    response = httpx.get(
        engine.api + "/process_instances/query",
        params={"processInstanceId": process_instance_id},
        headers=engine.headers(),
    )
    response.raise_for_status()
    found: dict[str, Any] = response.json()["processInstances"][0]
    return found


def flow_nodes(engine: EngineServer, process_instance_id: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(
        engine.api + "/flow_node_instances",
        params={"processInstanceId": process_instance_id},
        headers=engine.headers(),
    )
    response.raise_for_status()
    return {node["flowNodeId"]: node for node in response.json()["flowNodeInstances"]}


def assert_error(response: httpx.Response, status: int, class_name: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == status
    assert body["errorClassName"] == class_name
    return body


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


@pytest.fixture
def engine(engine_server: EngineServer) -> EngineServer:
    engine_server.deploy(service_model("EtSimple", "et_simple"))
    engine_server.deploy(service_model("EtOther", "et_other"))
    engine_server.deploy(service_model("EtBoundary", "et_boundary", boundary_error_code="E_FACHLICH"))
    return engine_server


def test_fetch_lock_finish_runs_the_process_on(engine: EngineServer) -> None:
    started = engine.start_instance("EtSimple", {"nummer": 5})
    tasks = fetch(engine, "et_simple", lock=20000)
    assert len(tasks) == 1
    task = tasks[0]
    assert set(task) >= {
        "id", "workerId", "topic", "isSingleTry", "flowNodeInstanceId", "correlationId", "processDefinitionId",
        "processModelId", "processInstanceId", "ownerId", "payload", "lockExpirationTime", "state", "createdAt",
    }  # fmt: skip
    assert task["workerId"] == "worker-a"
    assert task["topic"] == "et_simple"
    assert task["isSingleTry"] is False
    assert task["payload"] == {"nummer": 5}
    assert task["state"] == "pending"
    assert task["processInstanceId"] == started["processInstanceId"]
    assert task["correlationId"] == started["correlationId"]
    assert task["processModelId"] == "EtSimple"
    assert task["processDefinitionId"] == "Defs_EtSimple"
    assert "result" not in task
    assert "error" not in task
    assert "finishedAt" not in task
    node = flow_nodes(engine, started["processInstanceId"])["Work"]
    assert node["state"] == "suspended"
    assert node["flowNodeInstanceId"] == task["flowNodeInstanceId"]
    data = node["externalTaskData"]
    assert data["externalTaskId"] == task["id"]
    assert (data["topic"], data["state"], data["workerId"], data["payload"]) == (
        "et_simple",
        "pending",
        "worker-a",
        {"nummer": 5},
    )
    assert data["lockExpirationTime"] == task["lockExpirationTime"]
    lock_ends = time.mktime(time.strptime(task["lockExpirationTime"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 10 < lock_ends - time.time() < 30
    assert fetch(engine, "et_simple", worker="worker-b") == []  # locked

    response = finish(engine, task["id"], {"summe": 10})
    assert response.status_code == 204, response.text
    done = instance(engine, started["processInstanceId"])
    assert done["state"] == "finished"
    assert done["endToken"] == {"summe": 10}
    work = flow_nodes(engine, started["processInstanceId"])["Work"]
    assert work["endToken"] == {"summe": 10}
    assert work["externalTaskData"]["state"] == "finished"
    assert work["externalTaskData"]["result"] == {"summe": 10}
    assert "finishedAt" in work["externalTaskData"]
    assert_error(finish(engine, task["id"], {"again": True}), 409, "ConflictError")


def test_long_polling_wakes_up_when_a_task_is_created(engine: EngineServer) -> None:
    began = time.monotonic()
    thread, out = in_thread(lambda: fetch(engine, "et_simple", long_polling=10000))
    time.sleep(0.5)
    engine.start_instance("EtSimple", {"n": 1})
    thread.join(15)
    assert out
    assert len(out[0]) == 1
    assert out[0][0]["payload"] == {"n": 1}
    assert time.monotonic() - began < 5


def test_long_polling_answers_an_empty_list_when_nothing_arrives(engine: EngineServer) -> None:
    began = time.monotonic()
    assert fetch(engine, "et_simple", long_polling=400) == []
    assert 0.35 < time.monotonic() - began < 5


def test_max_tasks_and_topic_lists(engine: EngineServer) -> None:
    for n in range(3):
        engine.start_instance("EtSimple", {"n": n})
    engine.start_instance("EtOther", {"other": True})
    first = fetch(engine, "et_simple", max_tasks=2)
    assert [t["payload"] for t in first] == [{"n": 0}, {"n": 1}]  # oldest first
    both = fetch(engine, ["et_simple", "et_other"], worker="worker-b")
    assert sorted(t["topic"] for t in both) == ["et_other", "et_simple"]
    assert fetch(engine, ["et_simple", "et_other"], worker="worker-c") == []
    topics = httpx.get(engine.api + "/external_tasks/deployed_topics", headers=engine.headers()).json()
    assert set(topics) >= {"et_simple", "et_other", "et_boundary"}


def test_payload_filter_is_a_regular_expression_over_the_payload_json(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {"region": "north"})
    engine.start_instance("EtSimple", {"region": "south"})
    north = fetch(engine, "et_simple", payloadFilter='/"region":"NORTH"/i')
    assert [t["payload"] for t in north] == [{"region": "north"}]
    assert fetch(engine, "et_simple", payloadFilter="nowhere") == []
    assert [t["payload"] for t in fetch(engine, "et_simple", payloadFilter=None)] == [{"region": "south"}]
    body = assert_error(fetch_raw(engine, "et_simple", payloadFilter="/(/"), 400, "BadRequestError")
    assert "payloadFilter" in body["message"]


def test_a_payload_filter_that_backtracks_forever_is_refused_and_the_engine_goes_on(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {"text": "a" * 40 + "!"})
    # JavaScript syntax, not Python's: a named group works
    assert len(fetch(engine, "et_simple", payloadFilter='/"(?<key>text)"/', worker="worker-n")) == 1
    engine.start_instance("EtSimple", {"text": "a" * 40 + "!"})

    body = assert_error(fetch_raw(engine, "et_simple", payloadFilter="/(a+)+$/"), 400, "BadRequestError")

    assert "payloadFilter" in body["message"]
    assert [t["payload"] for t in fetch(engine, "et_simple")] == [{"text": "a" * 40 + "!"}]


def test_a_task_locked_by_another_worker_refuses_finish_extend_and_error(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {})
    task = fetch(engine, "et_simple")[0]
    assert_error(finish(engine, task["id"], {}, worker="worker-b"), 423, "LockedError")
    assert_error(extend(engine, task["id"], 1000, worker="worker-b"), 423, "LockedError")
    assert_error(report_error(engine, task["id"], {"errorCode": "X"}, worker="worker-b"), 423, "LockedError")
    assert_error(finish(engine, "no-such-task", {}), 404, "NotFoundError")
    assert finish(engine, task["id"], {"ok": 1}).status_code == 204


def test_an_expired_lock_makes_the_task_fetchable_again(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {"n": 1})
    thread, out = in_thread(
        lambda: httpx.get(
            engine.api + "/notifications/long_polling/external_task_unlocked", headers=engine.headers(), timeout=30
        )
    )
    task = fetch(engine, "et_simple", lock=300)[0]
    time.sleep(0.6)
    again = fetch(engine, "et_simple", worker="worker-b", lock=30000)
    assert [t["id"] for t in again] == [task["id"]]
    assert again[0]["workerId"] == "worker-b"
    assert_error(finish(engine, task["id"], {"late": True}), 423, "LockedError")
    assert finish(engine, task["id"], {"b": True}, worker="worker-b").status_code == 204
    thread.join(15)
    assert out
    assert out[0].status_code == 200
    assert out[0].json()["externalTaskId"] == task["id"]
    assert out[0].json()["topic"] == "et_simple"


def test_the_last_holder_may_still_finish_after_expiry_until_someone_else_locks(engine: EngineServer) -> None:
    started = engine.start_instance("EtSimple", {})
    task = fetch(engine, "et_simple", lock=200)[0]
    time.sleep(0.4)
    assert finish(engine, task["id"], {"late": "ok"}).status_code == 204
    assert instance(engine, started["processInstanceId"])["state"] == "finished"


def test_extend_lock_keeps_other_workers_out(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {})
    task = fetch(engine, "et_simple", lock=400)[0]
    assert extend(engine, task["id"], 3000).status_code == 204
    time.sleep(0.7)
    assert fetch(engine, "et_simple", worker="worker-b") == []
    assert finish(engine, task["id"], {}).status_code == 204
    assert_error(extend(engine, task["id"], 1000), 409, "ConflictError")


def test_a_bpmn_error_takes_the_matching_boundary_event(engine: EngineServer) -> None:
    started = engine.start_instance("EtBoundary", {"n": 1})
    task = fetch(engine, "et_boundary")[0]
    error = {"errorCode": "E_FACHLICH", "errorMessage": "Kunde unbekannt", "errorDetails": {"kunde": 7}}
    assert report_error(engine, task["id"], error).status_code == 204
    done = instance(engine, started["processInstanceId"])
    assert done["state"] == "finished"
    assert done["endEventId"] == "Failed"
    assert done["endToken"] == error
    nodes = flow_nodes(engine, started["processInstanceId"])
    assert nodes["Work"]["state"] == "error"
    assert nodes["Caught"]["state"] == "finished"
    assert "Done" not in nodes
    assert_error(finish(engine, task["id"], {}), 409, "ConflictError")


def test_the_python_clients_bpmn_error_body_is_understood(engine: EngineServer) -> None:
    started = engine.start_instance("EtBoundary", {})
    task = fetch(engine, "et_boundary")[0]
    body = {"workerId": "worker-a", "bpmnError": {"errorCode": "E_FACHLICH", "errorMessage": "x"}}
    assert put(engine, f"/external_tasks/{task['id']}/error", body).status_code == 204
    assert instance(engine, started["processInstanceId"])["endEventId"] == "Failed"


def test_an_error_without_a_matching_boundary_event_fails_the_instance(engine: EngineServer) -> None:
    started = engine.start_instance("EtBoundary", {})
    task = fetch(engine, "et_boundary")[0]
    error = {"errorCode": "ExternalTaskExecutionError", "errorMessage": "Datenbank weg", "errorDetails": "stack"}
    assert report_error(engine, task["id"], error).status_code == 204
    failed = instance(engine, started["processInstanceId"])
    assert failed["state"] == "error"
    assert failed["error"]["message"] == "Datenbank weg"
    assert failed["error"]["errorCode"] == "ExternalTaskExecutionError"
    assert failed["error"]["flowNodeId"] == "Work"
    assert flow_nodes(engine, started["processInstanceId"])["Work"]["state"] == "error"
    assert_error(finish(engine, task["id"], {}), 409, "ConflictError")


def test_the_payload_property_is_evaluated_over_token_and_data_objects(engine_server: EngineServer) -> None:
    xml = service_model(
        "EtPayload",
        "et_payload",
        properties={"payload": "{ kunde: dataObjects.rechnungsdaten.kunde, start: token.history.Start.n }"},
        before="<bpmn:script>return { kunde: 'ACME', betrag: 12 };</bpmn:script>"
        '<bpmn:dataOutputAssociation id="Out_1"><bpmn:targetRef>rechnungsdaten</bpmn:targetRef>'
        "</bpmn:dataOutputAssociation>",
    ).replace(
        "</bpmn:process>",
        '<bpmn:dataObjectReference id="rechnungsdaten" name="Rechnungsdaten" dataObjectRef="DataObject_1" />'
        '<bpmn:dataObject id="DataObject_1" /></bpmn:process>',
    )
    engine_server.deploy(xml)
    engine_server.start_instance("EtPayload", {"n": 3})
    assert fetch(engine_server, "et_payload")[0]["payload"] == {"kunde": "ACME", "start": 3}


def test_a_failing_payload_expression_fails_the_instance(engine_server: EngineServer) -> None:
    engine_server.deploy(service_model("EtBadPayload", "et_bad", properties={"payload": "token.current.a.b"}))
    started = engine_server.start_instance("EtBadPayload", {})
    failed = instance(engine_server, started["processInstanceId"])
    assert failed["state"] == "error"
    assert "Payload of external task" in failed["error"]["message"]
    assert fetch(engine_server, "et_bad") == []


@needs_real_models
def test_the_studio_invoice_model_hands_its_data_object_to_the_worker(engine_server: EngineServer) -> None:

    engine_server.deploy_file(SHARED_PROCESSES / "2_Rechnungserstellung_soll.bpmn")
    topics = httpx.get(engine_server.api + "/external_tasks/deployed_topics", headers=engine_server.headers()).json()
    assert {"Rechnung erstellen", "Rechnung verschicken"} <= set(topics)


def test_terminating_the_instance_ends_its_external_tasks(engine: EngineServer) -> None:
    started = engine.start_instance("EtSimple", {})
    task = fetch(engine, "et_simple")[0]
    response = put(engine, f"/process_instances/{started['processInstanceId']}/terminate", None)
    assert response.status_code == 204, response.text
    assert_error(finish(engine, task["id"], {}), 409, "ConflictError")
    engine.start_instance("EtSimple", {"fresh": True})
    assert [t["payload"] for t in fetch(engine, "et_simple", worker="worker-b")] == [{"fresh": True}]


def test_bad_bodies_are_refused_naming_the_field(engine: EngineServer) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"topicName": "t", "maxTasks": 1, "longPollingTimeout": 0, "lockDuration": 1000}, "workerId"),
        ({"workerId": "w", "maxTasks": 1, "longPollingTimeout": 0, "lockDuration": 1000}, "topicName"),
        ({"workerId": "w", "topicName": [], "maxTasks": 1}, "topicName"),
        ({"workerId": "w", "topicName": "t", "maxTasks": 0}, "maxTasks"),
        ({"workerId": "w", "topicName": "t", "maxTasks": 1, "lockDuration": "long"}, "lockDuration"),
        ({"workerId": "w", "topicName": "t", "maxTasks": 1, "longPollingTimeout": -1}, "longPollingTimeout"),
    ]
    for body, field in cases:
        response = httpx.post(engine.api + "/external_tasks/fetch_and_lock", json=body, headers=engine.headers())
        assert field in assert_error(response, 400, "BadRequestError")["message"], body
    engine.start_instance("EtSimple", {})
    task = fetch(engine, "et_simple")[0]
    assert (
        "result"
        in assert_error(
            put(engine, f"/external_tasks/{task['id']}/finish", {"workerId": "worker-a"}), 400, "BadRequestError"
        )["message"]
    )
    assert (
        "additionalDuration"
        in assert_error(
            put(engine, f"/external_tasks/{task['id']}/extend_lock", {"workerId": "worker-a"}), 400, "BadRequestError"
        )["message"]
    )
    assert (
        "errorCode"
        in assert_error(
            put(engine, f"/external_tasks/{task['id']}/error", {"workerId": "worker-a", "error": {}}),
            400,
            "BadRequestError",
        )["message"]
    )
    assert (
        "workerId"
        in assert_error(put(engine, f"/external_tasks/{task['id']}/finish", {"result": {}}), 400, "BadRequestError")[
            "message"
        ]
    )


def test_a_restart_keeps_locked_and_unlocked_tasks(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {"n": 1})
    engine.start_instance("EtSimple", {"n": 2})
    locked = fetch(engine, "et_simple", max_tasks=1, lock=60000)[0]
    assert locked["payload"] == {"n": 1}
    engine.restart()
    unlocked = fetch(engine, "et_simple", worker="worker-b")
    assert [t["payload"] for t in unlocked] == [{"n": 2}]
    assert fetch(engine, "et_simple", worker="worker-c") == []
    assert finish(engine, locked["id"], {"after": "restart"}).status_code == 204
    assert finish(engine, unlocked[0]["id"], {}, worker="worker-b").status_code == 204


def test_a_lock_that_expires_while_the_engine_is_down_is_released_after_the_restart(engine: EngineServer) -> None:
    engine.start_instance("EtSimple", {"n": 1})
    task = fetch(engine, "et_simple", lock=500)[0]
    engine.stop()
    time.sleep(0.7)
    engine.start()
    again = fetch(engine, "et_simple", worker="worker-b")
    assert [t["id"] for t in again] == [task["id"]]


def test_single_try_tasks_expire_and_fail_their_instance(engine_server: EngineServer) -> None:
    engine_server.deploy(service_model("EtSingle", "et_single", properties={"engine.isSingleTry": "true"}))
    started = engine_server.start_instance("EtSingle", {})
    task = fetch(engine_server, "et_single", lock=200)[0]
    assert task["isSingleTry"] is True
    deadline = time.monotonic() + 10
    while instance(engine_server, started["processInstanceId"])["state"] != "error" and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = instance(engine_server, started["processInstanceId"])
    assert failed["state"] == "error"
    assert failed["error"]["errorCode"] == "ExternalTaskExpired"
    assert fetch(engine_server, "et_single", worker="worker-b") == []
    assert_error(finish(engine_server, task["id"], {}), 409, "ConflictError")


def test_changes_need_the_write_scope(engine_server_factory: Any) -> None:
    engine = engine_server_factory(anonymous=False)  # the default client "carol" may only read
    discovery = httpx.get(engine.authority_url + "/.well-known/openid-configuration").json()
    token = httpx.post(
        discovery["token_endpoint"],
        data={"grant_type": "client_credentials", "client_id": "carol", "client_secret": "carol-secret"},
    ).json()["access_token"]
    assert_error(fetch_raw(engine, "t", token=token), 403, "ForbiddenError")
    response = httpx.get(engine.api + "/external_tasks/deployed_topics", headers=engine.headers(token))
    assert response.status_code == 200
    assert response.json() == []
    assert_error(fetch_raw(engine, "t", token="nonsense"), 401, "UnauthorizedError")


def test_created_and_locked_events_carry_the_task(engine: EngineServer) -> None:
    def next_event(name: str) -> Callable[[], httpx.Response]:
        return lambda: httpx.get(
            f"{engine.api}/notifications/long_polling/{name}", headers=engine.headers(), timeout=30
        )

    created_thread, created = in_thread(next_event("external_task_created"))
    locked_thread, locked = in_thread(next_event("external_task_locked"))
    time.sleep(0.3)
    started = engine.start_instance("EtSimple", {"n": 9})
    task = fetch(engine, "et_simple", worker="worker-e")[0]
    created_thread.join(15)
    locked_thread.join(15)
    message = created[0].json()
    assert message["externalTaskId"] == task["id"]
    assert message["topic"] == "et_simple"
    assert message["isSingleTry"] is False
    assert message["processInstanceId"] == started["processInstanceId"]
    assert message["flowNodeId"] == "Work"
    assert message["flowNodeName"] == "Arbeiten"
    assert message["flowNodeType"] == "bpmn:ServiceTask"
    assert message["currentToken"] == {"n": 9}
    lock_message = locked[0].json()
    assert lock_message["workerId"] == "worker-e"
    assert lock_message["lockExpirationTime"] == task["lockExpirationTime"]


def test_tasks_and_events_match_the_engines_openapi_document(engine: EngineServer) -> None:
    from tests.embedded_engine.test_openapi_conformance import OPENAPI_FILE, _sanitize

    if not OPENAPI_FILE.exists():
        pytest.skip("shared/reference is not beside this checkout")
    document = _sanitize(json.loads(OPENAPI_FILE.read_text()))

    def validate(schema_name: str, value: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(value), key=str)
        assert not errors, f"{schema_name}: {errors[0].message} at {list(errors[0].absolute_path)}"

    created_thread, created = in_thread(
        lambda: httpx.get(
            f"{engine.api}/notifications/long_polling/external_task_created", headers=engine.headers(), timeout=30
        )
    )
    time.sleep(0.3)
    engine.start_instance("EtSimple", {"n": 1})
    task = fetch(engine, "et_simple")[0]
    validate("ExternalTask", task)
    created_thread.join(15)
    validate("ExternalTaskCreatedMessage", created[0].json())
    topics = httpx.get(engine.api + "/external_tasks/deployed_topics", headers=engine.headers()).json()
    assert all(isinstance(topic, str) for topic in topics)
