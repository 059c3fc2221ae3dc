"""Writes told truly through a faulty network (issue 15): done, not done (ENGINE_UNAVAILABLE: never sent) or
OUTCOME_UNKNOWN; a failed read after a successful write never turns it into an error; nothing is sent twice.

Real processes: the embedded engine, the fault proxy in front of it (``tests/faults/proxy.py``), a gateway in front
of the proxy (see ``conftest.py``). Each rule hits exactly the request it names.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.faults.conftest import TIMEOUT
from tests.faults.proxy import Fault, FaultProxy
from tests.rest.conftest import Approvals
from tests.servers import EngineServer, GatewayServer

READS = r"/flow_node_instances$"
FINISH = r"/user_tasks/[^/]+/finish$"
RESERVE = r"/user_tasks/[^/]+/reserve$"
CANCEL = r"/user_tasks/[^/]+/cancel-reservation$"
#: A bound on answers that must not wait for the engine timeout: generous (the machine is shared), yet well below
#: what a timeout or a retry schedule would cost.
MARGIN = 10.0


def engine_task(engine: EngineServer, task_id: str) -> dict[str, Any]:
    [node] = engine.flow_nodes(flowNodeInstanceId=task_id)
    return node


def code_of(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["code"])


# -- finding: a reset before anything was forwarded was "did not answer in time" ----------------------------------


def test_a_reset_before_forwarding_is_outcome_unknown_said_as_a_reset(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([10])
    write = proxy.inject(Fault.reset(), method="PUT", path=FINISH, times=1)
    response = api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}})
    assert response.status_code == 504, response.text
    assert code_of(response) == "OUTCOME_UNKNOWN"
    detail = response.json()["detail"]
    assert "may or may not have happened" in detail
    assert "in time" not in detail  # a reset is no timeout
    assert write.hits == 1
    assert proxy.count("PUT", "/" + task_id + "/finish$", forwarded=True) == 0
    assert proxy.count("PUT", "/" + task_id + "/finish$") == 1  # never sent again behind the caller's back
    assert engine_task(engine, task_id)["state"] == "suspended"  # it did not happen: reading tells


def test_a_reset_before_forwarding_graphql(
    engine: EngineServer, proxy: FaultProxy, gateway: GatewayServer, approvals: Approvals
) -> None:
    [task_id] = approvals.start([12])
    proxy.inject(Fault.reset(), method="PUT", path=FINISH, times=1)
    body = gateway.graphql(
        "mutation($id: ID!) { finishUserTask(id: $id, result: {approved: true}) { __typename } }", {"id": task_id}
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "OUTCOME_UNKNOWN"
    assert "in time" not in error["message"]
    assert engine_task(engine, task_id)["state"] == "suspended"


# -- finding: aiohttp resent a PUT whose connection broke -----------------------------------------------------------


def test_a_finish_whose_connection_breaks_after_the_engine_applied_it_is_sent_once(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([20])
    # a read first, so that the finish goes out on a reused keep-alive connection (the case of the finding)
    assert api.get(f"/user-tasks/{task_id}").status_code == 200
    write = proxy.inject(Fault.reset(after=True), method="PUT", path=FINISH, times=1)
    response = api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}})
    assert response.status_code == 504, response.text
    assert code_of(response) == "OUTCOME_UNKNOWN"
    assert "lost" in response.json()["detail"]
    assert write.hits == 1
    assert (
        proxy.count("PUT", "/" + task_id + "/finish$") == 1
    )  # aiohttp would have sent it again (PUT is "idempotent" to it)
    assert engine_task(engine, task_id)["state"] == "finished"  # it did happen: reading tells


def test_a_reservation_cancel_whose_connection_breaks_is_sent_once(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([22])
    assert api.put(f"/user-tasks/{task_id}/reservation", json={"ownerId": "ann"}).status_code == 200
    proxy.inject(Fault.reset(after=True), method="DELETE", path=CANCEL, times=1)
    response = api.delete(f"/user-tasks/{task_id}/reservation")
    assert response.status_code == 504, response.text
    assert code_of(response) == "OUTCOME_UNKNOWN"
    assert proxy.count("DELETE", "/" + task_id + "/cancel-reservation$") == 1
    assert engine_task(engine, task_id).get("actualOwnerId") in (None, "")


# -- finding: a truncated body of the read after a write made the write an error ------------------------------------


def test_rest_reserve_and_cancel_answer_their_success_when_the_read_after_them_fails(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([30])
    write = proxy.inject(Fault.passthrough(), method="PUT", path=RESERVE, times=1)
    cut = proxy.inject(Fault.truncate(), method="GET", path=READS, armed_by=write)
    reserved = api.put(f"/user-tasks/{task_id}/reservation", json={"ownerId": "ann"})
    assert reserved.status_code == 200, reserved.text
    assert reserved.json()["reservedFor"] == "ann"
    assert reserved.json()["id"] == task_id
    assert cut.hits >= 1  # the read after the write was cut (and its retries)
    assert engine_task(engine, task_id)["actualOwnerId"] == "ann"

    proxy.clear()
    write = proxy.inject(Fault.passthrough(), method="DELETE", path=CANCEL, times=1)
    cut = proxy.inject(Fault.truncate(), method="GET", path=READS, armed_by=write)
    cancelled = api.delete(f"/user-tasks/{task_id}/reservation")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["reservedFor"] is None
    assert cut.hits >= 1
    assert engine_task(engine, task_id).get("actualOwnerId") in (None, "")


def test_graphql_reserve_answers_its_success_when_the_read_after_it_fails(
    engine: EngineServer, proxy: FaultProxy, gateway: GatewayServer, approvals: Approvals
) -> None:
    [task_id] = approvals.start([32])
    write = proxy.inject(Fault.passthrough(), method="PUT", path=RESERVE, times=1)
    cut = proxy.inject(Fault.truncate(), method="GET", path=READS, armed_by=write)
    body = gateway.graphql(
        'mutation($id: ID!) { reserveUserTask(id: $id, ownerId: "bea") {'
        " __typename ... on UserTask { id reservedFor } } }",
        {"id": task_id},
    )
    assert "errors" not in body, body
    assert body["data"]["reserveUserTask"] == {"__typename": "UserTask", "id": task_id, "reservedFor": "bea"}
    assert cut.hits >= 1
    assert engine_task(engine, task_id)["actualOwnerId"] == "bea"


def test_a_finish_answers_its_success_when_the_read_after_it_stalls(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([34])
    write = proxy.inject(Fault.passthrough(), method="PUT", path=FINISH, times=1)
    proxy.inject(Fault.stall(), method="GET", path=READS, armed_by=write)
    response = api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}})
    assert response.status_code == 200, response.text
    assert response.json()["task"]["state"] == "finished"
    assert engine_task(engine, task_id)["state"] == "finished"


def test_when_the_read_before_a_reservation_fails_nothing_is_sent(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([36])
    proxy.inject(Fault.truncate(), method="GET", path=READS)
    writes = proxy.count("PUT", RESERVE)
    response = api.put(f"/user-tasks/{task_id}/reservation", json={"ownerId": "ann"})
    assert response.status_code == 503, response.text
    assert code_of(response) == "ENGINE_UNAVAILABLE"
    assert proxy.count("PUT", RESERVE) == writes
    assert engine_task(engine, task_id).get("actualOwnerId") in (None, "")


# -- the engine's other failures, as the proxy makes them ------------------------------------------------------------


def test_a_slow_engine_is_engine_timeout_within_the_timeout(
    proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    approvals.start([40])
    proxy.inject(Fault.delay(60), method="GET", path=READS)
    started = time.monotonic()
    response = api.get("/user-tasks", params=approvals.params)
    assert response.status_code == 504, response.text
    assert code_of(response) == "ENGINE_TIMEOUT"
    assert time.monotonic() - started < TIMEOUT + MARGIN  # a bound, not a timing check


def test_a_write_that_gets_no_answer_is_outcome_unknown_in_time(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([42])
    proxy.inject(Fault.drop(after=True), method="PUT", path=FINISH, times=1)
    started = time.monotonic()
    response = api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}})
    assert response.status_code == 504, response.text
    assert code_of(response) == "OUTCOME_UNKNOWN"
    assert "in time" in response.json()["detail"]
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert engine_task(engine, task_id)["state"] == "finished"


def test_an_engine_that_dies_mid_request(
    engine: EngineServer, proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([44])
    proxy.inject(Fault.reset(after=True), method="GET", path=READS)  # reads are retried, and fail each time
    response = api.get(f"/user-tasks/{task_id}")
    assert response.status_code == 503, response.text
    assert code_of(response) == "ENGINE_UNAVAILABLE"
    assert response.headers["Retry-After"]
    proxy.clear()
    assert api.get(f"/user-tasks/{task_id}").status_code == 200


def test_a_5xx_and_garbage_from_the_way_to_the_engine_are_engine_error(
    proxy: FaultProxy, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([46])
    proxy.inject(Fault.answer(500), method="GET", path=READS, times=1)
    response = api.get(f"/user-tasks/{task_id}")
    assert (response.status_code, code_of(response)) == (502, "ENGINE_ERROR")
    proxy.inject(Fault.garbage(), method="GET", path=READS, times=1)
    response = api.get(f"/user-tasks/{task_id}")
    assert (response.status_code, code_of(response)) == (502, "ENGINE_ERROR")
