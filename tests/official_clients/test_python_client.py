"""(a) The official Python client ``processcube_client`` 6.1.2, unchanged, against the embedded engine."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, run_driver

pytestmark = pytest.mark.integration

PID = "OfficialClients_UserTasks"


@pytest.fixture(scope="module")
def basics(engine: EngineServer) -> Steps:
    return run_driver("py_client_basics.py", engine)


def test_info_parses_into_the_clients_application_info(basics: Steps) -> None:
    info = basics["Client.info"]
    assert info["id"]
    assert info["name"]
    assert info["version"]
    assert basics["AppInfoClient.get_info"]["version"] == info["version"]
    assert basics["Client.authority"].endswith("/authority")


def test_deploy_from_path_and_upload(basics: Steps) -> None:
    assert [item["deployed"] for item in basics["Client.deploy_bpmn_from_path"]["deployedFiles"]] == [True]
    basics["Client.process_definition_upload"]


def test_start_and_query_the_instance(basics: Steps) -> None:
    started = basics["Client.process_model_start"]
    assert started["processInstanceId"]
    assert started["correlationId"] == "official-py-basics"
    [instance] = basics["Client.process_instance_query"]
    assert instance["processInstanceId"] == started["processInstanceId"]
    assert instance["processModelId"] == PID
    assert instance["state"] == "running"


def test_flow_node_instance_query(basics: Steps) -> None:
    nodes = basics["Client.flow_node_instance_query"]
    assert {"flowNodeId": "StartEvent_1", "flowNodeType": "bpmn:StartEvent", "state": "finished"} in nodes
    assert {"flowNodeId": "Antrag_pruefen", "flowNodeType": "bpmn:UserTask", "state": "suspended"} in nodes


def test_user_task_query_reserve_cancel_finish(basics: Steps) -> None:
    task = basics["Client.user_task_query"]
    assert task["flowNodeName"] == "Antrag prüfen"
    assert [field["id"] for field in task["userTaskConfig"]["formFields"]] == ["approved", "comment"]
    assert basics["Client.user_task_reserve"][1] == "py@example.com"
    assert basics["Client.user_task_cancel_reservation"][1] is None
    basics["Client.user_task_finish"]
    assert basics["instance finished (Client)"]["state"] == "finished"


def test_async_clients_start_reserve_cancel_finish(basics: Steps) -> None:
    assert basics["ProcessDefinitionClient.start_process_instance"]["processInstanceId"]
    assert basics["UserTaskClient.reserve_user_task"][1] == "async@example.com"
    assert basics["UserTaskClient.cancel_reservation_user_task"][1] is None
    basics["UserTaskClient.finish_user_task"]
    assert basics["instance finished (async clients)"]["state"] == "finished"


@pytest.fixture(scope="module")
def notifications(engine: EngineServer) -> Steps:
    return run_driver("py_notifications.py", engine)


def test_notification_client_long_polls_process_and_user_task_events(notifications: Steps) -> None:
    [started] = notifications["on_process_started"][:1]
    assert started["processModelId"] == PID
    assert started["currentToken"] == {"benachrichtigung": True}
    [waiting] = notifications["on_user_task_waiting"][:1]
    assert waiting["flowNodeId"] == "Antrag_pruefen"
    assert waiting["flowNodeInstanceId"]
    [finished] = notifications["on_user_task_finished"][:1]
    assert finished["userTaskResult"] == {"approved": True}
    [ended] = notifications["on_process_ended"][:1]
    assert ended["processInstanceId"] == finished["processInstanceId"]


def test_delete_a_process_definition(basics: Steps) -> None:
    basics["deploy OfficialClients_Straight"]
    basics["Client.process_definition_delete"]
