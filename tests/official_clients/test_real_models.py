"""(g) Real models run to their end, driven only by the official clients with external task workers:
5Minds' ``2_Rechnungserstellung_soll.bpmn`` (TypeScript client) and ``SampleWithAppSDK.bpmn`` (Python client) from
shared/processes, and our model with user tasks, an external service task, a timer and a message."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, needs_shared_processes, run_driver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rechnung(engine: EngineServer) -> Steps:
    return run_driver("ts_real_models.cjs", engine, "rechnung")


@pytest.fixture(scope="module")
def antrag(engine: EngineServer) -> Steps:
    return run_driver("ts_real_models.cjs", engine, "antrag")


@pytest.fixture(scope="module")
def sample(engine: EngineServer) -> Steps:
    return run_driver("py_sample_with_app_sdk.py", engine)


@needs_node_client
@needs_shared_processes
def test_rechnungserstellung_runs_to_its_end(rechnung: Steps) -> None:
    erfassen = rechnung["Rechnung erfassen"]
    assert erfassen["flowNodeLane"] == "Controlling"
    assert [field["id"] for field in erfassen["formFields"]] == ["empfaenger", "produkt", "betrag"]
    assert rechnung["Rechnung freigeben: nein"]["flowNodeLane"] == "Geschäftsführung"
    rechnung["Rechnung erfassen (Korrektur)"]
    rechnung["Rechnung freigeben: ja"]
    assert rechnung["Rechnungserstellung outcome"] == {"state": "finished", "endEvents": ["Event_0ucrljd"]}
    assert rechnung["Rechnungserstellung service tasks"] == [
        "Activity_1ma93lo:finished",
        "Activity_1q5rlr7:finished",
        "Activity_1q5rlr7:finished",
    ]
    topics = [item["topic"] for item in rechnung["external tasks handled"]]
    assert topics == ["Rechnung erstellen", "Rechnung erstellen", "Rechnung verschicken"]


@needs_shared_processes
def test_sample_with_app_sdk_runs_to_its_end(sample: Steps) -> None:
    [deployed] = sample["deploy_bpmn_from_path"]["deployedFiles"]
    assert deployed["deployed"] is True
    assert sample["Begrüssung eingeben"]["flowNodeName"] == "Begrüssung eingeben"
    second = sample["Begrüssung bekommen"]
    assert second["formFields"][0]["id"] == "greeting_back"
    assert second["formFields"][0]["defaultValue"] == "Moin zurück"
    assert sample["instance"]["state"] == "finished"
    assert sample["end events"] == ["Event_0uodxce"]
    assert [payload.get("greeting") for payload in sample["external task payloads"]] == ["Moin"]


@needs_node_client
def test_antrag_with_user_tasks_service_task_timer_and_message_runs_to_its_end(antrag: Steps) -> None:
    assert antrag["Antrag erfassen"]["flowNodeLane"] == "Sachbearbeitung"
    antrag["waiting for the message"]
    antrag["triggerMessageEvent"]
    assert antrag["Antrag abschliessen"]["flowNodeLane"] == "Leitung"
    assert antrag["Antrag outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}
    flow = antrag["Antrag flow"]
    assert flow == [
        "StartEvent_1:finished",
        "Antrag_erfassen:finished",
        "Antrag_bewerten:finished",
        "Kurz_warten:finished",
        "Bestaetigung_abwarten:finished",
        "Antrag_abschliessen:finished",
        "EndEvent_1:finished",
    ]
    [handled] = antrag["external tasks handled"]
    assert handled["topic"] == "oc_antrag_bewerten"
    assert handled["payload"]["betrag"] == 1500
