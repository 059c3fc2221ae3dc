"""Concurrent duplicates agree: the same finish sent many times at once by one caller answers the same every time.

No Idempotency-Key here: a client that retries on a timeout, or two tabs that submit one form, send the same
finish twice. The engine applies the first; every other one is refused by the engine, and the gateway recognises
it as the finish that happened (this caller, this result) instead of answering 409. A finish with another result
is no duplicate: it is refused.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.report import AttackReport
from tests.rest.conftest import Approvals
from tests.servers import GatewayServer

COPIES = 20
FINISH = """
mutation Finish($id: ID!, $result: JSON!) {
  finishUserTask(id: $id, result: $result) {
    __typename
    ... on FinishedUserTask { task { id state } nextTasks { flowNodeId } }
  }
}
"""


async def _at_once(gateway: GatewayServer, requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        return list(await asyncio.gather(*(client.request(method, path, json=body) for method, path, body in requests)))


def test_twenty_identical_finishes_at_once_all_answer_200_with_the_same_body(
    gateway: GatewayServer, approvals: Approvals, attack_report: AttackReport
) -> None:
    [task_id] = approvals.start([100])
    finish = ("POST", f"/api/v1/user-tasks/{task_id}/finish", {"result": {"approved": True}})
    responses = asyncio.run(_at_once(gateway, [finish] * COPIES))
    attack_report.add("inputs tried", COPIES)
    attack_report.add("writes misreported", sum(response.status_code != 200 for response in responses))
    assert [response.status_code for response in responses] == [200] * COPIES, [r.text for r in responses]
    bodies = [response.json() for response in responses]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["task"]["state"] == "finished"
    assert [task["flowNodeId"] for task in bodies[0]["nextTasks"]] == ["notifyCustomer"]


def test_duplicates_over_both_faces_agree_too(gateway: GatewayServer, approvals: Approvals) -> None:
    [task_id] = approvals.start([102])
    result = {"approved": False}
    rest = ("POST", f"/api/v1/user-tasks/{task_id}/finish", {"result": result})
    graphql = ("POST", "/graphql", {"query": FINISH, "variables": {"id": task_id, "result": result}})
    responses = asyncio.run(_at_once(gateway, [rest, graphql] * (COPIES // 2)))
    assert all(response.status_code == 200 for response in responses), [r.text for r in responses]
    rest_states = {response.json()["task"]["state"] for response in responses[0::2]}
    outcomes = [response.json()["data"]["finishUserTask"] for response in responses[1::2]]
    assert rest_states == {"finished"}
    assert {outcome["__typename"] for outcome in outcomes} == {"FinishedUserTask"}
    assert {outcome["task"]["state"] for outcome in outcomes} == {"FINISHED"}


def test_finishes_with_different_results_are_no_duplicates_one_wins(
    gateway: GatewayServer, approvals: Approvals
) -> None:
    [task_id] = approvals.start([104])
    path = f"/api/v1/user-tasks/{task_id}/finish"
    requests = [("POST", path, {"result": {"approved": True, "comment": f"take {n}"}}) for n in range(COPIES // 2)]
    responses = asyncio.run(_at_once(gateway, requests))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * (len(requests) - 1), [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"TASK_NOT_ACTIVE"}
