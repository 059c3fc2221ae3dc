"""(b) The official TypeScript client ``@5minds/processcube_engine_client`` 6.1.4, unchanged: user tasks, deploy,
start, start-and-await, and notifications over Socket.IO."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, run_driver

pytestmark = [pytest.mark.integration, needs_node_client]

PID = "OfficialClients_UserTasks"


@pytest.fixture(scope="module")
def user_tasks(engine: EngineServer) -> Steps:
    return run_driver("ts_user_tasks.cjs", engine)


@pytest.fixture(scope="module")
def start_and_await(engine: EngineServer) -> Steps:
    return run_driver("ts_start_and_await.cjs", engine)


@pytest.fixture(scope="module")
def notifications(engine: EngineServer) -> Steps:
    return run_driver("ts_notifications.cjs", engine)


def test_deploy_files_and_start(user_tasks: Steps) -> None:
    user_tasks["deployFiles"]
    assert user_tasks["processModels.getById"]["processModelId"] == PID
    started = user_tasks["processModels.startProcessInstance"]
    assert started["processInstanceId"]
    assert started["correlationId"] == "official-ts-user-tasks"


def test_user_task_query_shows_the_waiting_task(user_tasks: Steps) -> None:
    task = user_tasks["userTasks.query"]
    assert task["totalCount"] == 1
    assert task["flowNodeId"] == "Antrag_pruefen"
    assert task["flowNodeName"] == "Antrag prüfen"
    assert task["flowNodeLane"] == "Sachbearbeitung"
    assert task["flowNodeType"] == "bpmn:UserTask"
    assert task["state"] == "suspended"
    assert task["startToken"] == {"antragsnummer": 7}
    assert task["formFieldIds"] == ["approved", "comment"]
    assert task["actualOwnerId"] is None


def test_reserve_cancel_and_finish(user_tasks: Steps) -> None:
    assert user_tasks["userTasks.reserveUserTaskInstance"] == {"actualOwnerId": "sachbearbeiterin@example.com"}
    assert user_tasks["userTasks.cancelUserTaskInstanceReservation"] == {"actualOwnerId": None}
    user_tasks["userTasks.finishUserTask"]
    finished = user_tasks["finished task"]
    assert finished["state"] == "finished"
    assert user_tasks["instance outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}


def test_persist_and_start_and_await_end_event(start_and_await: Steps) -> None:
    start_and_await["processDefinitions.persistProcessDefinitions"]
    answer = start_and_await["processModels.startProcessInstanceAndAwaitEndEvent"]
    assert answer["processInstanceId"]
    assert answer["endEventId"] == "EndEvent_Fertig"
    assert answer["tokenPayload"] == {"bestellung": 42}


def test_start_and_await_through_process_definitions(start_and_await: Steps) -> None:
    answer = start_and_await["processDefinitions.startProcessInstanceAndAwaitEndEvent"]
    assert answer["endEventId"] == "EndEvent_Fertig"
    assert answer["tokenPayload"] == {"bestellung": 43}


def test_start_and_await_a_specific_end_event(start_and_await: Steps) -> None:
    answer = start_and_await["processModels.startProcessInstanceAndAwaitSpecificEndEvent"]
    assert answer["endEventId"] == "EndEvent_Fertig"
    assert answer["tokenPayload"] == {"bestellung": 44}


def test_notifications_started_and_user_task_waiting(notifications: Steps) -> None:
    notifications["socket connected"]
    ids = notifications["ids"]
    started = notifications["onProcessStarted"]
    assert sorted(message["processInstanceId"] for message in started) == sorted(ids.values())
    assert {message["processModelId"] for message in started} == {PID}
    waiting = notifications["onUserTaskWaiting"]
    assert sorted(message["processInstanceId"] for message in waiting) == sorted(ids.values())
    assert {message["flowNodeId"] for message in waiting} == {"Antrag_pruefen"}
    assert notifications["userTasks.onUserTaskWaiting"] >= 2


def test_notifications_ended_and_terminated(notifications: Steps) -> None:
    ids = notifications["ids"]
    assert [message["processInstanceId"] for message in notifications["onProcessEnded"]] == [ids["finished"]]
    assert [message["processInstanceId"] for message in notifications["onProcessTerminated"]] == [ids["terminated"]]


@pytest.fixture(scope="module")
def reads(engine: EngineServer) -> Steps:
    return run_driver("ts_reads.cjs", engine)


def test_application_info_and_authority(reads: Steps) -> None:
    info = reads["applicationInfo.getApplicationInfo"]
    assert info["id"]
    assert info["version"]
    assert reads["applicationInfo.getAuthorityAddress"] == info["authorityUrl"]


def test_process_definitions_and_models(reads: Steps) -> None:
    definitions = {item["processDefinitionId"]: item for item in reads["processDefinitions.getAll"]["items"]}
    assert definitions["OfficialClients_UserTasks_Definition"]["processModelIds"] == [PID]
    assert definitions["OfficialClients_UserTasks_Definition"]["deployedAtIsDate"] is True
    assert reads["processDefinitions.getById"] == "OfficialClients_UserTasks_Definition"
    assert PID in reads["processModels.getAll"]["ids"]


def test_process_definition_of_a_process_model(reads: Steps) -> None:
    answer = reads["processDefinitions.getByProcessModelId"]
    assert answer == {"processDefinitionId": "OfficialClients_UserTasks_Definition", "hasXml": True}


def test_process_model_and_definition_of_an_instance(reads: Steps) -> None:
    assert reads["processModels.getByProcessInstanceId"] == PID
    assert reads["processInstances.getProcessDefinition"] == "OfficialClients_UserTasks_Definition"


def test_process_instance_query_filters_sorts_and_pages(reads: Steps) -> None:
    ids = reads["ids"]
    page = reads["processInstances.query by correlationId, sorted, paged"]
    assert page == {"totalCount": 2, "ids": [ids["second"]], "states": ["running"], "createdAtIsDate": True}
    assert reads["processInstances.query by state (array)"] == sorted(ids.values())


def test_flow_node_query_sorts_and_pages(reads: Steps) -> None:
    ids = reads["ids"]
    page = reads["flowNodeInstances.query sorted with paging"]
    assert page == {"totalCount": 2, "processInstanceIds": [ids["second"]], "startedAtIsDate": True}


def test_deployed_topics_and_terminate(reads: Steps) -> None:
    assert "oc_lock" in reads["ExternalTaskApiClient.getAllDeployedTopics"]
    assert reads["processInstances.terminateProcessInstance"] == {"state": "terminated", "taskStates": ["terminated"]}


def test_delete_a_process_definition(reads: Steps) -> None:
    remaining = reads["processDefinitions.deleteById"]
    assert "OfficialClients_ExternalTaskLock" not in remaining
    assert PID in remaining


def test_refusals_arrive_as_the_sdks_errors_with_the_status(user_tasks: Steps) -> None:
    not_found = {"refused": True, "name": "NotFoundError", "code": 404, "isError": True}
    assert user_tasks["finishUserTask of a finished task"] == not_found
    assert user_tasks["reserve an unknown task"] == not_found
    assert user_tasks["start an unknown process model"] == not_found
