"""Live task lists over REST, through real HTTP: server-sent events read by a real SSE client (httpx-sse) and the
change feed, from gateway processes in front of an embedded engine process.

Most tests share the module's engine and one gateway (heartbeats every 0.2 s) and keep out of each other's way with
a correlation id of their own; the tests of a setting (replay buffer, subscriptions per caller) or of a shutdown
start their own gateway in front of the same engine. Waiting is polling with a deadline, never a timing assertion.
What a test must *not* receive is shown by a later event it does receive (events arrive in order).

A slow consumer at this level would need a client that leaves megabytes of events unread (the TCP buffers hold
that much before the gateway's send blocks); the core's test of the hub holds that rule
(tests/core/test_live.py, a subscriber that falls ``queue_size`` behind is ended).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse

from gateway.rest import params
from gateway.rest.openapi import load_document
from gateway.rest.problems import PROBLEM_BASE
from tests.embedded_engine.test_http_api import token_for
from tests.rest.conftest import Approvals
from tests.rest.test_rest_api import TASK_FIELDS
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

EVENTS = "/api/v1/user-task-events"
CHANGES = "/api/v1/user-tasks/changes"
DEADLINE_SECONDS = 30.0
TASK_EVENTS = {"waiting", "reserved", "reservationCancelled", "finished", "terminated"}


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory, shared_engine: EngineServer) -> Iterator[GatewayServer]:
    """The module's gateway (overrides tests.rest.conftest's): heartbeats every 0.2 s."""
    gateway = gateway_in_front_of(
        shared_engine.url, tmp_path_factory.mktemp("live-gateway"), GATEWAY_SSE_HEARTBEAT_SECONDS=0.2
    ).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def own_gateway(tmp_path: Path, shared_engine: EngineServer) -> Iterator[Callable[..., GatewayServer]]:
    """Gateways with settings of their own, in front of the module's engine: ``own_gateway(GATEWAY_...=...)``."""
    started: list[GatewayServer] = []

    def start(**env: Any) -> GatewayServer:
        gateway = gateway_in_front_of(shared_engine.url, tmp_path / f"gateway-{len(started)}", **env).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


# -- helpers -----------------------------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Received:
    """What one stream delivered so far, in order; ``ended`` once the server closed it."""

    events: list[ServerSentEvent] = field(default_factory=list)
    ended: bool = False

    async def pump(self, source: EventSource) -> None:
        async for event in source.aiter_sse():
            self.events.append(event)
        self.ended = True

    @property
    def task_events(self) -> list[ServerSentEvent]:
        return [event for event in self.events if event.event in TASK_EVENTS]

    def of(self, task_id: str) -> list[str]:
        """The event names that concern ``task_id``, in order."""
        return [event.event for event in self.task_events if event.json()["task"]["id"] == task_id]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not condition():
            assert time.monotonic() < deadline, f"no {what} within {DEADLINE_SECONDS} s; received: {self.events}"
            await asyncio.sleep(0.05)

    async def event(self, name: str, task_id: str | None = None) -> dict[str, Any]:
        """The data of the first event ``name`` (about ``task_id``), once it arrived."""

        def found() -> dict[str, Any] | None:
            for event in self.events:
                if event.event == name and (task_id is None or event.json()["task"]["id"] == task_id):
                    data: dict[str, Any] = event.json()
                    return data
            return None

        await self.until(lambda: found() is not None, f"'{name}' event" + (f" of {task_id}" if task_id else ""))
        data = found()
        assert data is not None
        return data


@asynccontextmanager
async def listening(
    gateway: GatewayServer, params: Any = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Received]:
    """A stream of live events, read in the background by httpx-sse; closed (the client goes away) on exit."""
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=httpx.Timeout(30, read=None)) as client,
        aconnect_sse(client, "GET", EVENTS, params=params, headers=dict(headers or {})) as source,
    ):
        response = source.response
        if response.status_code != 200:
            await response.aread()
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        received = Received()
        reader = asyncio.create_task(received.pump(source))
        try:
            yield received
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def whole_stream(
    gateway: GatewayServer, params: Any = None, headers: dict[str, str] | None = None
) -> list[ServerSentEvent]:
    """Every event of a stream that the gateway ends."""
    async with listening(gateway, params, headers) as stream:
        await stream.until(lambda: stream.ended, "the end of the stream")
    return stream.events


async def stream_status(gateway: GatewayServer) -> httpx.Response:
    """The answer to a stream request, read up to its status (a problem's body is read too); then closed."""
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        client.stream("GET", EVENTS, headers={"Accept": "text/event-stream"}) as response,
    ):
        if response.status_code != 200:
            await response.aread()
        return response


async def request(gateway: GatewayServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url + "/api/v1", timeout=60) as client:
        return await client.request(method, path, **kwargs)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def problem(response: httpx.Response, status: int, kind: str, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"], body["code"]) == (PROBLEM_BASE + kind, status, code)
    assert body["instance"] == f"urn:request:{response.headers['x-request-id']}"
    return body


async def start(approvals: Approvals, amounts: list[int]) -> list[str]:
    return await asyncio.to_thread(approvals.start, amounts)


async def cursor_now(gateway: GatewayServer, headers: dict[str, str] | None = None) -> str:
    page = ok(await request(gateway, "GET", "/user-tasks/changes", headers=headers))
    assert (page["changes"], page["hasMore"]) == ([], False)
    cursor: str = page["cursor"]
    return cursor


async def feed(gateway: GatewayServer, **query: Any) -> dict[str, Any]:
    page: dict[str, Any] = ok(await request(gateway, "GET", "/user-tasks/changes", params=query))
    return page


async def feed_until(
    gateway: GatewayServer, condition: Callable[[dict[str, dict[str, Any]]], bool], **query: Any
) -> dict[str, dict[str, Any]]:
    """Poll the change feed (one page) until ``condition`` holds for its entries by task id."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        page = await feed(gateway, **query)
        entries = {entry["taskId"]: entry for entry in page["changes"]}
        if condition(entries):
            return entries
        assert time.monotonic() < deadline, f"the change feed did not get there: {page}"
        await asyncio.sleep(0.1)


# -- the contract ------------------------------------------------------------------------------------------------


def test_the_contract_lists_the_parameters_the_code_takes() -> None:
    document = load_document()
    components = document["components"]["parameters"]

    def names(path: str, where: str) -> set[str]:
        parameters = [
            components[item["$ref"].rpartition("/")[2]] for item in document["paths"][path]["get"]["parameters"]
        ]
        return {parameter["name"] for parameter in parameters if parameter["in"] == where}

    assert names(EVENTS, "query") == params.EVENTS_PARAMETERS
    assert names(EVENTS, "header") == {params.LAST_EVENT_ID_HEADER}
    assert names(CHANGES, "query") == params.CHANGES_PARAMETERS
    assert names(CHANGES, "query") - {"since", "limit"} == names(EVENTS, "query") - {"lastEventId"}
    assert document["components"]["schemas"]["EventId"]["pattern"] == params.EVENT_ID_PATTERN
    assert document["components"]["schemas"]["EventId"]["maxLength"] == params.MAX_EVENT_ID_LENGTH


# -- server-sent events ------------------------------------------------------------------------------------------


async def test_events_tell_waiting_reserved_and_finished_with_the_task_as_the_list_renders_it(
    gateway: GatewayServer, approvals: Approvals
) -> None:
    async with listening(gateway, approvals.params) as stream:  # no state: tasks in any state
        [task_id] = await start(approvals, [42])
        waiting = await stream.event("waiting", task_id)
        assert waiting["kind"] == "WAITING"
        assert set(waiting) == {"eventId", "kind", "at", "task"}
        assert set(waiting["task"]) == TASK_FIELDS

        mine = ok(await request(gateway, "PUT", f"/user-tasks/{task_id}/reservation"))
        reserved = await stream.event("reserved", task_id)
        assert reserved["kind"] == "RESERVED"
        assert reserved["task"]["reservedFor"] == mine["reservedFor"] is not None
        listed = ok(await request(gateway, "GET", "/user-tasks", params=approvals.params))["items"]
        assert reserved["task"] == listed[0]  # exactly the list route's rendering

        finish = {"result": {"approved": True, "comment": "fine"}}
        outcome = ok(await request(gateway, "POST", f"/user-tasks/{task_id}/finish", json=finish))
        [next_task] = outcome["nextTasks"]
        finished = await stream.event("finished", task_id)
        assert (finished["kind"], finished["task"]["state"]) == ("FINISHED", "finished")
        assert finished["task"] == outcome["task"]
        assert (await stream.event("waiting", next_task["id"]))["task"]["flowNodeId"] == "notifyCustomer"

    assert stream.of(task_id) == ["waiting", "reserved", "finished"]
    ids = [event.id for event in stream.task_events]
    assert ids == [event.json()["eventId"] for event in stream.task_events]
    assert len(set(ids)) == len(ids)


async def test_the_filter_parameters_are_the_lists(gateway: GatewayServer, approvals: Approvals) -> None:
    filtered = {**approvals.params, "state": "suspended", "token": "amount:gte:1000"}
    async with listening(gateway, filtered) as stream:
        small, big = await start(approvals, [500, 5000])
        ok(await request(gateway, "POST", f"/user-tasks/{big}/finish", json={"result": {"approved": False}}))
        ok(await request(gateway, "PUT", f"/user-tasks/{small}/reservation"))
        [last] = await start(approvals, [7000])  # the last event: what came before it has arrived
        await stream.event("waiting", last)
    # not the small one, not the finished one (state), not the next task (its token has no amount)
    assert [(event.event, event.json()["task"]["id"]) for event in stream.task_events] == [
        ("waiting", big),
        ("waiting", last),
    ]


async def test_heartbeat_comments_keep_an_idle_stream_open(gateway: GatewayServer, approvals: Approvals) -> None:
    # A failure here is reported as a plain message (pytrace=False, raised outside any except block): rendering its
    # traceback once crashed an xdist worker (CPython 3.11.7, "AST constructor recursion depth mismatch").
    try:
        seen = await _idle_stream_lines(gateway, approvals, heartbeats=3)
    except Exception as exc:
        failure = f"the idle stream failed: {type(exc).__name__}: {exc}"
    else:
        failure = "" if set(seen) <= {": heartbeat", ""} else f"an idle stream sent {seen[:20]!r}"
    if failure:
        pytest.fail(failure, pytrace=False)


async def _idle_stream_lines(gateway: GatewayServer, approvals: Approvals, *, heartbeats: int) -> list[str]:
    """The raw lines of an event stream nothing happens on, up to ``heartbeats`` heartbeat comments.

    A comment is no event: SSE clients (httpx-sse too) skip it, so the raw lines are read here.
    """
    seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        client.stream("GET", EVENTS, params=approvals.params) as response,
    ):
        assert response.status_code == 200, (response.status_code, (await response.aread())[:500])
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        # aclosing: leaving the loop early closes the line generator here, on this test's event loop; left to the
        # garbage collector, it was finalized later on a closed loop, which failed whichever test ran then
        async with asyncio.timeout(30), aclosing(response.aiter_lines()) as lines:  # heartbeats come every 0.2 s
            async for line in lines:
                seen.append(line)
                if seen.count(": heartbeat") == heartbeats:
                    return seen
    raise AssertionError(f"the stream ended after {seen[:20]!r}")


async def test_last_event_id_resumes_with_exactly_the_missed_events(
    gateway: GatewayServer, approvals: Approvals
) -> None:
    async with listening(gateway, approvals.params) as first:
        [one] = await start(approvals, [1])
        await first.event("waiting", one)
    last_seen = first.task_events[-1].id

    # missed while away: one reserved, two waiting; the feed shows when the gateway has heard of them
    ok(await request(gateway, "PUT", f"/user-tasks/{one}/reservation"))
    two, three = await start(approvals, [2, 3])
    await feed_until(gateway, lambda entries: {one, two, three} <= set(entries), since=last_seen, **approvals.params)

    async with listening(gateway, approvals.params, headers={"Last-Event-ID": last_seen}) as resumed:
        await resumed.until(lambda: len(resumed.task_events) >= 3, "replay")
        ok(await request(gateway, "DELETE", f"/user-tasks/{one}/reservation"))  # live again after the replay
        await resumed.event("reservationCancelled", one)
    assert [(event.event, event.json()["task"]["id"]) for event in resumed.task_events] == [
        ("reserved", one),
        ("waiting", two),
        ("waiting", three),
        ("reservationCancelled", one),
    ]
    replayed = [event.id for event in resumed.task_events]

    # the parameter, for clients that cannot send headers; the header wins over it (EventSource's reconnects)
    async with listening(gateway, {**approvals.params, "lastEventId": last_seen}) as by_parameter:
        await by_parameter.until(lambda: len(by_parameter.task_events) >= 4, "replay")
    assert [event.id for event in by_parameter.task_events] == replayed
    query = {**approvals.params, "lastEventId": last_seen}
    async with listening(gateway, query, headers={"Last-Event-ID": replayed[2]}) as both:
        await both.until(lambda: len(both.task_events) >= 1, "replay")
    assert [event.id for event in both.task_events] == replayed[3:]


async def test_a_resume_beyond_the_replay_buffer_is_told_and_the_feed_answers_410(
    own_gateway: Callable[..., GatewayServer], approvals: Approvals
) -> None:
    gateway = own_gateway(GATEWAY_REPLAY_BUFFER=2)
    cursor = await cursor_now(gateway)
    await start(approvals, [1, 2, 3])
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (
        response := await request(gateway, "GET", "/user-tasks/changes", params={"since": cursor})
    ).status_code == 200:
        assert time.monotonic() < deadline, "the buffer never moved past the cursor"
        await asyncio.sleep(0.1)
    body = problem(response, 410, "changes-expired", "CHANGES_EXPIRED")
    assert "read the list again" in body["detail"]

    for resume in (cursor, "00000000-1"):  # too old; issued by another gateway process
        [expired] = await whole_stream(gateway, headers={"Last-Event-ID": resume})
        assert expired.event == "expired"
        data = expired.json()
        assert (data["type"], data["status"], data["code"]) == (
            PROBLEM_BASE + "changes-expired",
            410,
            "CHANGES_EXPIRED",
        )
        assert "read the list again" in data["detail"]


async def test_refusals_before_the_stream_starts_are_problems(gateway: GatewayServer) -> None:
    problem(
        await request(gateway, "GET", "/user-task-events", params={"limit": "5"}), 400, "bad-request", "BAD_REQUEST"
    )
    body = problem(
        await request(gateway, "GET", "/user-task-events", params={"lastEventId": "nope", "reserved": "maybe"}),
        400,
        "bad-request",
        "BAD_REQUEST",
    )
    assert {item["field"] for item in body["problems"]} == {"lastEventId", "reserved"}
    body = problem(
        await request(gateway, "GET", "/user-task-events", headers={"Last-Event-ID": "x"}),
        400,
        "bad-request",
        "BAD_REQUEST",
    )
    assert [item["field"] for item in body["problems"]] == ["Last-Event-ID"]
    bad_token = {"Authorization": "Bearer not.a.jwt"}
    problem(
        await request(gateway, "GET", "/user-task-events", headers=bad_token), 401, "unauthenticated", "UNAUTHENTICATED"
    )
    json_only = {"Accept": "application/json"}
    problem(await request(gateway, "GET", "/user-task-events", headers=json_only), 406, "not-acceptable", "BAD_REQUEST")
    problem(await request(gateway, "POST", "/user-task-events"), 405, "method-not-allowed", "BAD_REQUEST")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        head = await client.head(EVENTS)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-type"].startswith("text/event-stream")


async def test_one_stream_per_caller_then_429_until_it_is_closed(own_gateway: Callable[..., GatewayServer]) -> None:
    gateway = own_gateway(GATEWAY_SUBSCRIPTIONS_PER_CALLER=1)
    async with listening(gateway):
        body = problem(await stream_status(gateway), 429, "too-many-subscriptions", "TOO_MANY_SUBSCRIPTIONS")
        assert "live subscriptions" in body["detail"]
    # the client went away: the gateway notices and frees the slot
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (response := await stream_status(gateway)).status_code != 200:
        problem(response, 429, "too-many-subscriptions", "TOO_MANY_SUBSCRIPTIONS")
        assert time.monotonic() < deadline, "the closed stream's slot was never freed"
        await asyncio.sleep(0.1)


async def test_stopping_the_gateway_ends_an_open_stream_with_shutting_down(
    own_gateway: Callable[..., GatewayServer],
) -> None:
    gateway = own_gateway()
    async with listening(gateway) as stream:
        await asyncio.to_thread(gateway.stop)  # SIGTERM, then waits for the process
        await stream.until(lambda: stream.ended, "end of the stream")
    [end] = stream.events
    assert end.event == "end"
    assert end.json()["code"] == "SHUTTING_DOWN"
    assert "Traceback" not in gateway.log()


# -- lanes: each caller sees only what its token may see -----------------------------------------------------------


async def test_two_users_with_other_lanes_never_see_each_others_tasks(
    engine: EngineServer, gateway: GatewayServer, approvals: Approvals
) -> None:
    alice_token, bob_token = await asyncio.gather(
        asyncio.to_thread(token_for, engine, "alice", "alice-secret"),
        asyncio.to_thread(token_for, engine, "bob", "bob-secret"),
    )
    alice, bob = bearer(alice_token), bearer(bob_token)
    alice_cursor, bob_cursor = await cursor_now(gateway, alice), await cursor_now(gateway, bob)
    # bob's stream without any filter: nothing but his token stands between him and alice's tasks
    async with (
        listening(gateway, approvals.params, headers=alice) as seen_by_alice,
        listening(gateway, headers=bob) as seen_by_bob,
    ):
        [approval] = await start(approvals, [5])  # lane Approver: alice's
        await seen_by_alice.event("waiting", approval)
        ok(await request(gateway, "PUT", f"/user-tasks/{approval}/reservation", headers=alice))
        finish = {"result": {"approved": True, "comment": "ok"}}
        outcome = ok(await request(gateway, "POST", f"/user-tasks/{approval}/finish", json=finish, headers=alice))
        assert outcome["nextTasks"] == []  # the next task is in lane Clerk: alice may not see it
        await seen_by_bob.until(
            lambda: any(
                event.json()["task"]["correlationId"] == approvals.correlation_id for event in seen_by_bob.task_events
            ),
            "the next task, in bob's lane",
        )
        [notify] = [
            event.json()["task"]
            for event in seen_by_bob.task_events
            if event.json()["task"]["correlationId"] == approvals.correlation_id
        ]
        assert (notify["lane"], notify["flowNodeId"]) == ("Clerk", "notifyCustomer")
        ok(await request(gateway, "PUT", f"/user-tasks/{notify['id']}/reservation", headers=bob))
        [second] = await start(approvals, [7])
        await seen_by_alice.event("waiting", second)  # the last of alice's: bob's came before it
        ok(await request(gateway, "DELETE", f"/user-tasks/{notify['id']}/reservation", headers=bob))
        await seen_by_bob.event("reservationCancelled", notify["id"])  # the last of bob's: alice's came before it

    alices, bobs = {approval, second}, {notify["id"]}
    assert seen_by_alice.of(approval) == ["waiting", "reserved", "finished"]
    assert seen_by_alice.of(second) == ["waiting"]
    assert {event.json()["task"]["id"] for event in seen_by_alice.task_events} == alices
    assert seen_by_bob.of(notify["id"]) == ["waiting", "reserved", "reservationCancelled"]
    assert {event.json()["task"]["lane"] for event in seen_by_bob.task_events} == {"Clerk"}
    for stream, others in ((seen_by_alice, bobs), (seen_by_bob, alices)):
        for event in stream.events:
            assert not any(task_id in event.data for task_id in others), event

    for token, cursor, own, others in ((alice, alice_cursor, alices, bobs), (bob, bob_cursor, bobs, alices)):
        page = ok(
            await request(
                gateway,
                "GET",
                "/user-tasks/changes",
                params={"since": cursor, "state": ["suspended", "finished"]},
                headers=token,
            )
        )
        ids = {entry["taskId"] for entry in page["changes"]}
        assert own <= ids
        assert not ids & others
        assert not any(task_id in str(page) for task_id in others)


# -- the change feed ---------------------------------------------------------------------------------------------


async def test_the_change_feed_gives_each_task_once_as_it_is_now_or_a_removal_marker(
    gateway: GatewayServer, approvals: Approvals
) -> None:
    cursor = await cursor_now(gateway)
    reserved, finished, waiting = await start(approvals, [10, 20, 30])
    ok(await request(gateway, "PUT", f"/user-tasks/{reserved}/reservation", json={"ownerId": "alice"}))
    outcome = ok(await request(gateway, "POST", f"/user-tasks/{finished}/finish", json={"result": {"approved": True}}))
    [follow_up] = outcome["nextTasks"]
    mine = {reserved, finished, waiting, follow_up["id"]}

    entries = await feed_until(gateway, lambda entries: mine <= set(entries), since=cursor, **approvals.params)
    # a task outside the filter that changed meanwhile (another test's) can only be a removal marker
    assert all(entries[task_id]["removed"] for task_id in set(entries) - mine)
    assert entries[reserved]["kind"] == "RESERVED"
    assert entries[reserved]["removed"] is False
    assert entries[reserved]["task"]["reservedFor"] == "alice"
    assert entries[finished] == {
        "eventId": entries[finished]["eventId"],
        "kind": "FINISHED",
        "taskId": finished,
        "removed": True,  # finished: it left the list of waiting tasks
        "task": None,
    }
    assert (entries[waiting]["kind"], entries[waiting]["removed"]) == ("WAITING", False)
    listed = {
        item["id"]: item for item in ok(await request(gateway, "GET", "/user-tasks", params=approvals.params))["items"]
    }
    for task_id in (reserved, waiting, follow_up["id"]):
        assert entries[task_id]["task"] == listed[task_id]  # as the list shows it now

    # page by page: at most `limit` changes each, the same outcome in the end
    page = await feed(gateway, since=cursor, limit=1, **approvals.params)
    assert page["hasMore"] is True
    assert len(page["changes"]) <= 1
    latest: dict[str, dict[str, Any]] = {}
    pages = 0
    while True:
        latest.update({entry["taskId"]: entry for entry in page["changes"]})
        pages += 1
        if not page["hasMore"]:
            break
        page = await feed(gateway, since=page["cursor"], limit=1, **approvals.params)
        assert len(page["changes"]) <= 1
    assert pages >= 6  # 4 waiting, 1 reserved, 1 finished
    assert {task_id: latest[task_id] for task_id in mine} == entries

    # from the last cursor on: nothing yet
    assert (await feed(gateway, since=page["cursor"], **approvals.params))["changes"] == []


async def test_the_change_feed_refuses_what_it_cannot_answer(gateway: GatewayServer) -> None:
    cursor = await cursor_now(gateway)
    for limit in ("101", "-1", "many"):
        body = problem(
            await request(gateway, "GET", "/user-tasks/changes", params={"since": cursor, "limit": limit}),
            400,
            "bad-request",
            "BAD_REQUEST",
        )
        assert [item["field"] for item in body["problems"]] == ["limit"]
    for since in ("", "yesterday", f"{cursor}0000000000000000000"):
        body = problem(
            await request(gateway, "GET", "/user-tasks/changes", params={"since": since}),
            400,
            "bad-request",
            "BAD_REQUEST",
        )
        assert [item["field"] for item in body["problems"]] == ["since"]
    body = problem(
        await request(gateway, "GET", "/user-tasks/changes", params={"sort": "name", "cursor": "abc"}),
        400,
        "bad-request",
        "BAD_REQUEST",
    )
    assert {item["field"] for item in body["problems"]} == {"sort", "cursor"}
    problem(
        await request(gateway, "GET", "/user-tasks/changes", params={"since": "00000000-1"}),
        410,
        "changes-expired",
        "CHANGES_EXPIRED",
    )


async def test_an_interrupted_engine_stream_is_told_as_a_gap(engine_server: EngineServer, tmp_path: Path) -> None:
    gateway = gateway_in_front_of(engine_server.url, tmp_path / "gap-gateway").start()
    try:
        async with listening(gateway) as stream:
            await asyncio.to_thread(engine_server.restart)  # the gateway's event stream from the engine drops
            gap = await stream.event("gap")
        assert set(gap) == {"after", "message"}
        assert re.search(params.EVENT_ID_PATTERN, gap["after"])
        assert [event.event for event in stream.events] == ["gap"]  # no id: a gap is not resumed from
        assert stream.events[0].id == ""
    finally:
        gateway.stop()
