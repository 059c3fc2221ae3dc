"""(c) External tasks through the official clients: the TypeScript ``ExternalTaskWorker``, the Python
``ExternalTaskClient`` worker, and the Python ``Client``'s fetch_and_lock/extend_lock/finish with two workers."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, run_driver

pytestmark = pytest.mark.integration

EXPECTED = {
    "finish": {"state": "finished", "endEvents": ["EndEvent_Ok"]},
    "bpmnError": {"state": "finished", "endEvents": ["EndEvent_Fachlich"]},
    "serviceError": {"state": "error", "endEvents": []},
    "slow": {"state": "finished", "endEvents": ["EndEvent_Ok"]},
}


@pytest.fixture(scope="module")
def ts_worker(engine: EngineServer) -> Steps:
    return run_driver("ts_external_tasks.cjs", engine)


@pytest.fixture(scope="module")
def py_worker(engine: EngineServer) -> Steps:
    return run_driver("py_external_tasks.py", engine)


@pytest.fixture(scope="module")
def lock_expiry(engine: EngineServer) -> Steps:
    return run_driver("py_lock_expiry.py", engine)


@needs_node_client
def test_ts_worker_fetches_with_the_payload_and_finishes(ts_worker: Steps) -> None:
    handled = {item["mode"]: item for item in ts_worker["handled"]}
    assert handled["finish"]["topic"] == "oc_ts_work"
    assert handled["finish"]["workerId"] == "ts-worker"
    assert handled["finish"]["payload"] == {"mode": "finish", "nummer": 6}
    assert handled["finish"]["hasLockExpirationTime"] is True
    assert ts_worker["outcome finish"] == EXPECTED["finish"]


@needs_node_client
def test_ts_worker_bpmn_error_is_caught_by_the_boundary_event(ts_worker: Steps) -> None:
    assert ts_worker["outcome bpmnError"] == EXPECTED["bpmnError"]


@needs_node_client
def test_ts_worker_service_error_fails_the_instance(ts_worker: Steps) -> None:
    assert ts_worker["outcome serviceError"] == EXPECTED["serviceError"]


@needs_node_client
def test_ts_worker_extends_the_lock_of_a_slow_task(ts_worker: Steps) -> None:
    assert ts_worker["outcome slow"] == EXPECTED["slow"]
    assert "extendLock" in {beat["operation"] for beat in ts_worker["heartbeats"]}
    assert [error for error in ts_worker["workerErrors"] if error["mode"] == "slow"] == []


def test_python_worker_finishes(py_worker: Steps) -> None:
    handled = {item["mode"]: item for item in py_worker["handled"]}
    assert handled["finish"]["topic"] == "oc_py_work"
    assert handled["finish"]["payload"] == {"mode": "finish", "nummer": 6}
    assert py_worker["outcome finish"] == EXPECTED["finish"]


def test_python_worker_functional_error_is_caught_by_the_boundary_event(py_worker: Steps) -> None:
    assert py_worker["outcome bpmnError"] == EXPECTED["bpmnError"]


def test_python_worker_exception_fails_the_instance(py_worker: Steps) -> None:
    assert py_worker["outcome serviceError"] == EXPECTED["serviceError"]


def test_python_worker_extends_the_lock_of_a_slow_task(py_worker: Steps) -> None:
    assert py_worker["outcome slow"] == EXPECTED["slow"]
    assert py_worker["extend locks"]
    assert [error for error in py_worker["worker errors"] if "extend lock" in error] == []


def test_a_locked_task_is_not_fetched_by_another_worker(lock_expiry: Steps) -> None:
    [first] = lock_expiry["worker A fetch_and_lock"]
    assert first["workerId"] == "worker-a"
    assert first["topic"] == "oc_lock"
    assert first["payload"] == {"auftrag": 1}
    lock_expiry["worker A extend_lock"]
    assert lock_expiry["worker B fetch while locked"] == []


def test_an_expired_lock_lets_another_worker_fetch_and_finish(lock_expiry: Steps) -> None:
    ids = lock_expiry["ids"]
    [second] = lock_expiry["worker B fetch after expiry"]
    assert second["id"] == ids["first"]
    assert second["workerId"] == "worker-b"
    lock_expiry["worker B finish"]
    assert lock_expiry["instance"]["state"] == "finished"
    assert lock_expiry["instance"]["endToken"] == {"von": "b"}


def test_the_first_worker_cannot_finish_after_losing_the_lock(lock_expiry: Steps) -> None:
    lock_expiry["worker B fetch after expiry"]
    assert lock_expiry.error("worker A finish after expiry")["status"] in (400, 409, 410, 423)
