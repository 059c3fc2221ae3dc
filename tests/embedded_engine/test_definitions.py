"""Deployed definitions over real HTTP: which definition and model an instance runs on, and undeploying."""

from __future__ import annotations

import httpx
import pytest

from tests.embedded_engine.test_waiting_events import chain, studio_model
from tests.servers import EngineServer

pytestmark = pytest.mark.integration


def approval(version: str) -> str:
    return studio_model(
        "Leave",
        f'<bpmn:startEvent id="Start" /><bpmn:userTask id="Approve" name="Approve ({version})" />'
        '<bpmn:endEvent id="End" />' + chain("Start", "Approve", "End"),
    )


@pytest.fixture
def engine(engine_server: EngineServer) -> EngineServer:
    engine_server.deploy(approval("v1"))
    return engine_server


def get(engine: EngineServer, path: str) -> httpx.Response:
    return httpx.get(engine.api + path, headers=engine.headers())


def delete(engine: EngineServer, path: str, **params: str) -> httpx.Response:
    return httpx.delete(engine.api + path, params=params, headers=engine.headers())


def test_an_instance_names_the_model_and_definition_version_it_runs_on(engine: EngineServer) -> None:
    started = engine.start_instance("Leave")["processInstanceId"]
    engine.deploy(approval("v2"))

    model = get(engine, f"/process_instances/{started}/process_model").json()
    definition = get(engine, f"/process_instances/{started}/process_definition").json()

    assert model["processModelId"] == "Leave"
    assert "Approve (v1)" in definition["xml"]
    assert definition["processDefinitionId"] == "Definition_Leave"
    assert "Approve (v2)" in get(engine, "/process_models/Leave/process_definition").json()["xml"]
    assert get(engine, "/process_instances/nope/process_model").status_code == 404
    assert get(engine, "/process_models/Nope/process_definition").status_code == 404


def test_undeploying_keeps_running_instances_unless_asked_to_delete_them(engine: EngineServer) -> None:
    started = engine.start_instance("Leave")["processInstanceId"]

    assert delete(engine, "/process_definitions/Definition_Leave").status_code == 204

    assert get(engine, "/process_models/Leave").status_code == 404
    assert get(engine, "/process_definitions/Definition_Leave").status_code == 404
    (task,) = engine.user_tasks(processInstanceId=started)
    finished = httpx.put(
        f"{engine.api}/user_tasks/{task['flowNodeInstanceId']}/finish", json={}, headers=engine.headers()
    )
    assert finished.status_code == 204
    assert delete(engine, "/process_definitions/Definition_Leave").status_code == 404


def test_undeploying_a_model_with_its_related_data_deletes_its_instances(engine: EngineServer) -> None:
    started = engine.start_instance("Leave")["processInstanceId"]

    assert delete(engine, "/process_models/Leave", delete_all_related_data="true").status_code == 204

    assert engine.user_tasks(processInstanceId=started) == []
    found = get(engine, f"/process_instances/query?processInstanceId={started}").json()
    assert found["totalCount"] == 0
    engine.deploy(approval("v3"))
    assert get(engine, "/process_models/Leave").status_code == 200
