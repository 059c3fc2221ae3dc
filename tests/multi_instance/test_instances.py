"""Two gateway instances behind one (imagined) load balancer, sharing Redis: Idempotency-Keys and page cursors hold
across instances, and a Redis outage refuses keyed writes before they reach the engine."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from gateway.metrics import metric_in
from tests.multi_instance.conftest import RedisServer
from tests.rest.conftest import Approvals
from tests.servers import EngineServer, GatewayServer, poll


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def finish_url(gateway: GatewayServer, task_id: str) -> str:
    return f"{gateway.url}/api/v1/user-tasks/{task_id}/finish"


def engine_writes(gateway: GatewayServer) -> int:
    """PUT requests the gateway sent to the engine (a finish or a reservation is one each; reads are GETs)."""
    return int(metric_in(httpx.get(gateway.url + "/metrics").text, "gateway_engine_requests_total", method="PUT"))


def waiting(engine: EngineServer, task_id: str) -> bool:
    return any(task["flowNodeInstanceId"] == task_id for task in engine.user_tasks(flowNodeInstanceId=task_id))


def test_one_key_sent_to_both_instances_at_once_finishes_the_task_once(
    engine: EngineServer, gateways: tuple[GatewayServer, GatewayServer], approvals: Approvals
) -> None:
    a, b = gateways
    [task_id] = approvals.start([11])
    headers = key()
    body = {"result": {"approved": True, "comment": "once"}}
    writes = engine_writes(a) + engine_writes(b)
    calls = (a.engine_calls(), b.engine_calls())

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(
                await asyncio.gather(
                    *(client.post(finish_url(gateway, task_id), json=body, headers=headers) for gateway in (a, b))
                )
            )

    answers = asyncio.run(both())
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    assert answers[0].content == answers[1].content
    replayed = [answer.headers.get("idempotent-replayed") == "true" for answer in answers]
    assert sorted(replayed) == [False, True]
    assert engine_writes(a) + engine_writes(b) == writes + 1  # one finish reached the engine
    replaying = (a, b)[replayed.index(True)]
    assert replaying.engine_calls() == calls[replayed.index(True)]  # the replaying instance asked the engine nothing
    assert not waiting(engine, task_id)
    assert answers[0].json()["task"]["state"] == "finished"


def test_a_retry_on_the_other_instance_replays_without_the_engine(
    gateways: tuple[GatewayServer, GatewayServer], approvals: Approvals
) -> None:
    a, b = gateways
    [task_id] = approvals.start([12])
    headers = key()
    body = {"result": {"approved": False, "comment": "retry elsewhere"}}
    first = httpx.post(finish_url(a, task_id), json=body, headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    calls = b.engine_calls()
    again = httpx.post(
        finish_url(b, task_id),
        content=b'{"result":{"comment":"retry elsewhere","approved":false}}',  # the same JSON, spelled differently
        headers={**headers, "Content-Type": "application/json"},
        timeout=60,
    )
    assert b.engine_calls() == calls
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["idempotent-replayed"] == "true"


def test_the_same_key_with_another_body_on_the_other_instance_is_a_422(
    gateways: tuple[GatewayServer, GatewayServer], approvals: Approvals
) -> None:
    a, b = gateways
    [task_id] = approvals.start([13])
    headers = key()
    first = httpx.post(finish_url(a, task_id), json={"result": {"approved": True}}, headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    other = httpx.post(finish_url(b, task_id), json={"result": {"approved": False}}, headers=headers, timeout=60)
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_page_cursor_of_one_instance_works_on_the_other(
    gateways: tuple[GatewayServer, GatewayServer], approvals: Approvals
) -> None:
    a, b = gateways
    approvals.start([21, 22, 23])
    params: dict[str, Any] = {**approvals.params, "limit": 2, "sort": "-token.amount"}
    first = httpx.get(a.url + "/api/v1/user-tasks", params=params, timeout=60).json()
    assert first["nextCursor"], first
    second = httpx.get(b.url + "/api/v1/user-tasks", params={**params, "cursor": first["nextCursor"]}, timeout=60)
    assert second.status_code == 200, second.text
    amounts = [item["token"]["amount"] for item in [*first["items"], *second.json()["items"]]]
    assert amounts == [23, 22, 21]


def test_while_redis_is_down_keyed_writes_are_refused_before_the_engine(
    engine: EngineServer,
    gateways: tuple[GatewayServer, GatewayServer],
    redis_server: RedisServer,
    approvals: Approvals,
) -> None:
    a, b = gateways
    [keyed_id, plain_id, later_id] = approvals.start([31, 32, 33])
    body = {"result": {"approved": True}}
    redis_server.kill()
    try:
        writes = engine_writes(a)
        refused = httpx.post(finish_url(a, keyed_id), json=body, headers=key(), timeout=60)
        assert refused.status_code == 503, refused.text
        problem = refused.json()
        assert (problem["code"], problem["type"].rsplit("/", 1)[1]) == (
            "IDEMPOTENCY_UNAVAILABLE",
            "idempotency-unavailable",
        )
        assert refused.headers["retry-after"] == str(problem["retryAfterSeconds"])
        assert engine_writes(a) == writes  # nothing was sent to the engine
        assert waiting(engine, keyed_id)
        plain = httpx.post(finish_url(b, plain_id), json=body, timeout=60)  # without a key Redis is not needed
        assert plain.status_code == 200, plain.text
        listing = httpx.get(a.url + "/api/v1/user-tasks", params=approvals.params, timeout=60)
        assert listing.status_code == 200, listing.text
    finally:
        redis_server.start()  # the same port: the instances' connection pools find it again
    headers = key()
    answers = [httpx.post(finish_url(gateway, later_id), json=body, headers=headers, timeout=60) for gateway in (a, b)]
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    assert answers[1].headers["idempotent-replayed"] == "true"
    retried = httpx.post(finish_url(b, keyed_id), json=body, headers=key(), timeout=60)
    assert retried.status_code == 200, retried.text
    poll(lambda: not waiting(engine, keyed_id))


def test_a_hung_redis_answers_503_within_a_bound(
    engine: EngineServer,
    gateways: tuple[GatewayServer, GatewayServer],
    redis_server: RedisServer,
    approvals: Approvals,
) -> None:
    a, _ = gateways
    [task_id] = approvals.start([41])
    redis_server.pause()
    try:
        started = time.monotonic()
        refused = httpx.post(finish_url(a, task_id), json={"result": {"approved": True}}, headers=key(), timeout=60)
        assert time.monotonic() - started < 10  # a bound on waiting (about 2 s), not a timing measurement
    finally:
        redis_server.resume()
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "IDEMPOTENCY_UNAVAILABLE"
    assert waiting(engine, task_id)
