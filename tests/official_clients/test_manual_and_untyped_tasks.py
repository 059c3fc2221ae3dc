"""(d) Manual tasks and untyped (empty ``bpmn:task``) tasks wait, suspended, until a client finishes them."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, run_driver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ts(engine: EngineServer) -> Steps:
    return run_driver("ts_manual_untyped.cjs", engine)


@pytest.fixture(scope="module")
def py(engine: EngineServer) -> Steps:
    return run_driver("py_manual_untyped.py", engine)


@needs_node_client
def test_ts_manual_task_waits_and_is_finished(ts: Steps) -> None:
    task = ts["manualTasks.query"]
    assert task["flowNodeId"] == "Ware_einpacken"
    assert task["flowNodeName"] == "Ware einpacken"
    assert task["flowNodeType"] == "bpmn:ManualTask"
    assert task["flowNodeLane"] == "Lager"
    assert task["state"] == "suspended"
    ts["manualTasks.finishManualTask"]


@needs_node_client
def test_ts_untyped_task_waits_and_is_finished(ts: Steps) -> None:
    task = ts["untypedTasks.query"]
    assert task["flowNodeId"] == "Paket_abgeben"
    assert task["flowNodeType"] == "bpmn:Task"
    assert task["state"] == "suspended"
    ts["untypedTasks.finishTask"]
    assert ts["instance outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}


def test_python_manual_task_waits_and_is_finished(py: Steps) -> None:
    task = py["Client.manual_task_query"]
    assert task["flowNodeId"] == "Ware_einpacken"
    assert task["processModelId"] == "OfficialClients_ManualUntyped"
    py["Client.manual_task_finish"]


def test_python_untyped_task_is_finished_through_the_legacy_route(py: Steps) -> None:
    task = py["Client.empty_task_query"]
    assert task["flowNodeId"] == "Paket_abgeben"
    py["Client.empty_task_finish"]
    assert py["instance"]["state"] == "finished"
