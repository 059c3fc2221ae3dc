"""GraphQL subscriptions over real WebSockets (graphql-transport-ws): gateway processes in front of an engine process.

Changes are made at the engine (or through the gateway) by the test; what each subscriber receives is collected
in full, then checked. Waits are polls with deadlines, never sleeps whose length decides the outcome.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest

from gateway.core import errors
from gateway.core.cache import ReadCache
from gateway.core.changes import ChangeKind, EngineChange
from gateway.core.cursor import CursorCodec
from gateway.core.domain import Caller
from gateway.core.hub import ChangeHub, HubLimits
from gateway.core.live import LiveService
from gateway.core.live_lists import LiveLists
from gateway.core.service import ServiceLimits, TaskService
from gateway.gql.context import Context
from gateway.gql.inputs import UserTaskFilter, to_filter
from gateway.gql.schema import build_schema
from tests.core.fakes import FakeEngine, make_task
from tests.embedded_engine.test_http_api import finish, reserve, token_for
from tests.servers import DUMMY_TOKEN, REPO, EngineServer, GatewayServer, gateway_in_front_of, poll

EXAMPLES_DIR = REPO / "examples" / "processes"
DEADLINE = 20.0  # seconds any one expected message may take (it usually takes milliseconds)

TASK = "id name lane state processInstanceId reservedFor"

EVENTS = f"""
subscription Events($filter: UserTaskFilter, $after: String) {{
  userTaskEvents(filter: $filter, after: $after) {{
    __typename
    ... on UserTaskEvent {{ eventId kind at task {{ {TASK} }} }}
    ... on EventsMissed {{ after message }}
  }}
}}
"""

LIST = f"""
subscription List($filter: UserTaskFilter, $sort: [UserTaskSort!], $first: Int) {{
  userTaskList(filter: $filter, sort: $sort, first: $first) {{
    __typename
    ... on UserTaskListSnapshot {{ eventId reason totalCount tasks {{ {TASK} }} }}
    ... on UserTaskListChanges {{
      eventId totalCount removed order
      added {{ index task {{ {TASK} }} }}
      updated {{ index task {{ {TASK} }} }}
    }}
    ... on EventsMissed {{ after message }}
  }}
}}
"""

RESERVE_FOR = """
mutation Reserve($id: ID!, $owner: String) {
  reserveUserTask(id: $id, ownerId: $owner) { __typename ... on UserTask { id reservedFor } }
}
"""

RESERVE = """
mutation Reserve($id: ID!) { reserveUserTask(id: $id) { __typename ... on UserTask { id reservedFor } } }
"""


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """One engine with the example models for the module; each test isolates its tasks by correlation id."""
    server = EngineServer(data_dir=tmp_path_factory.mktemp("live") / "engine").start()
    for path in sorted(EXAMPLES_DIR.glob("*.bpmn")):
        server.deploy_file(path)
    yield server
    server.stop()


def following_events(gateway: GatewayServer, engine: EngineServer) -> GatewayServer:
    """``gateway`` once its engine event stream is connected: a change made now reaches its subscribers.

    The stream connects just after the gateway answers /healthz; a change made at the engine shows when it did.
    """
    engine.start_instance("LeaveRequest", {"days": 1}, correlationId=f"warm-up-{uuid.uuid4()}")
    poll(lambda: gateway.metric("gateway_engine_events_total") > 0)
    return gateway


@pytest.fixture(scope="module")
def start_gateway(module_engine: EngineServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    started: list[GatewayServer] = []

    def start(engine: EngineServer | None = None, *, follow: bool = True, **env: Any) -> GatewayServer:
        """A gateway before ``engine`` (the module's), with ``env``; ``follow``: once it follows the events."""
        engine = engine or module_engine
        gateway = gateway_in_front_of(engine.url, tmp_path_factory.mktemp("gateway"), **env).start()
        started.append(gateway)
        return following_events(gateway, engine) if follow else gateway

    yield start
    for gateway in started:
        gateway.stop()


GatewayFactory = Callable[..., GatewayServer]


@pytest.fixture(scope="module")
def module_gateway(start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway()


@pytest.fixture
def gateway(module_gateway: GatewayServer) -> GatewayServer:
    """The module's gateway once the subscriptions of earlier tests are gone (a disconnect frees them just after)."""
    poll(lambda: live_subscriptions(module_gateway) == 0)
    return module_gateway


@pytest.fixture
def engine(module_engine: EngineServer) -> EngineServer:
    return module_engine


# -- a graphql-transport-ws client -----------------------------------------------------------------------------


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class GraphQLSocket:
    """One graphql-transport-ws connection: operations by id, each with its own inbox of messages."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.inboxes: dict[str, asyncio.Queue[dict[str, Any] | Closed]] = {}
        self.received: list[dict[str, Any]] = []  # every message, in order
        self.closed: Closed | None = None
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def _inbox(self, operation_id: str) -> asyncio.Queue[dict[str, Any] | Closed]:
        return self.inboxes.setdefault(operation_id, asyncio.Queue())

    async def _read(self) -> None:
        while True:
            message = await self.socket.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            if body["type"] == "ping":
                await self.socket.send_json({"type": "pong"})
                continue
            self.received.append(body)
            if "id" in body:
                self._inbox(body["id"]).put_nowait(body)
        self.closed = Closed(self.socket.close_code, str(message.extra or ""))
        for inbox in self.inboxes.values():
            inbox.put_nowait(self.closed)

    async def subscribe(self, operation_id: str, query: str, **variables: Any) -> None:
        self._inbox(operation_id)
        payload = {"query": query, "variables": variables}
        await self.socket.send_json({"id": operation_id, "type": "subscribe", "payload": payload})

    async def complete(self, operation_id: str) -> None:
        await self.socket.send_json({"id": operation_id, "type": "complete"})

    async def take(self, operation_id: str, within: float = DEADLINE) -> dict[str, Any]:
        """The next message of an operation (raises Closed when the connection closed first)."""
        if self.closed is not None and self._inbox(operation_id).empty():
            raise self.closed
        item = await asyncio.wait_for(self._inbox(operation_id).get(), within)
        if isinstance(item, Closed):
            raise item
        return item

    async def data_until(
        self, operation_id: str, done: Callable[[list[dict[str, Any]]], bool], within: float = DEADLINE
    ) -> list[dict[str, Any]]:
        """The operation's ``next`` payloads' data, collected until ``done(collected)`` holds (fails on errors)."""
        collected: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while not done(collected):
            message = await self.take(operation_id, max(0.01, deadline - time.monotonic()))
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            collected.append(next(iter(message["payload"]["data"].values())))
        return collected

    async def ending(self, operation_id: str, within: float = DEADLINE) -> tuple[str, dict[str, Any]]:
        """Skip data until the operation fails: (its code, its error). An execution failure (the subscription could
        not start, or it ended) is ``next`` without data, then ``complete``; a refused document is ``error``."""
        deadline = time.monotonic() + within
        while True:
            message = await self.take(operation_id, max(0.01, deadline - time.monotonic()))
            if message["type"] == "next" and "errors" not in message["payload"]:
                continue
            if message["type"] == "next":
                assert message["payload"]["data"] is None, message
                [error] = message["payload"]["errors"]
                assert (await self.take(operation_id)) == {"id": operation_id, "type": "complete"}
            else:
                assert message["type"] == "error", message
                [error] = message["payload"]
            return str(error["extensions"]["code"]), error


@asynccontextmanager
async def connect(
    gateway: GatewayServer, *, header_token: str | None = None, init: dict[str, Any] | None = None
) -> AsyncIterator[GraphQLSocket]:
    """An acknowledged graphql-transport-ws connection (``init``: the connection_init payload)."""
    headers = {"Authorization": f"Bearer {header_token}"} if header_token else {}
    url = gateway.graphql_url.replace("http://", "ws://")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=["graphql-transport-ws"], headers=headers) as socket,
    ):
        await socket.send_json({"type": "connection_init", "payload": init or {}})
        ack = await socket.receive(timeout=DEADLINE)
        if ack.type is not aiohttp.WSMsgType.TEXT:
            raise Closed(socket.close_code, str(ack.extra or ""))
        assert json.loads(ack.data)["type"] == "connection_ack", ack
        client = GraphQLSocket(socket)
        client.start()
        try:
            yield client
        finally:
            await client.stop()


def live_subscriptions(gateway: GatewayServer) -> float:
    return gateway.metric("gateway_live_subscriptions")


def start_approval(engine: EngineServer, correlation_id: str, amount: int = 100) -> tuple[str, str]:
    """Start an ApprovalProcess; answer its instance id and the id of its first task (lane Approver)."""
    started = engine.start_instance(
        "ApprovalProcess", {"amount": amount, "customerType": "vip", "customerId": "C"}, correlationId=correlation_id
    )
    instance = started["processInstanceId"]
    return instance, engine.user_tasks(processInstanceId=instance)[0]["flowNodeInstanceId"]


def finished(engine: EngineServer, task_id: str, result: dict[str, Any], token: str = DUMMY_TOKEN) -> None:
    response = finish(engine, task_id, result, token)
    assert response.status_code == 204, response.text


def events_of(task_id: str, events: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in events if event.get("task", {}).get("id") == task_id]


# -- userTaskEvents ------------------------------------------------------------------------------------------


def test_events_tell_of_a_task_started_reserved_and_finished(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation = f"events-{uuid.uuid4()}"

    async def scenario() -> list[dict[str, Any]]:
        async with connect(gateway) as client:
            await client.subscribe("events", EVENTS, filter={"correlationId": [correlation]})
            poll_task = asyncio.to_thread(poll, lambda: live_subscriptions(gateway) >= 1)
            await poll_task
            _, task_id = await asyncio.to_thread(start_approval, engine, correlation)
            reserved = await asyncio.to_thread(gateway.graphql, RESERVE, {"id": task_id})
            assert reserved["data"]["reserveUserTask"]["__typename"] == "UserTask", reserved
            await asyncio.to_thread(finished, engine, task_id, {"approved": False})
            return await client.data_until(
                "events", lambda got: any(e.get("kind") == "FINISHED" and e["task"]["id"] == task_id for e in got)
            )

    events = asyncio.run(scenario())
    approve = next(event["task"] for event in events if event["task"]["name"] == "Approve order")
    assert events_of(approve["id"], events) == ["WAITING", "RESERVED", "FINISHED"]
    last = [event for event in events if event["task"]["id"] == approve["id"]][-1]
    assert last["task"]["state"] == "FINISHED"
    assert last["task"]["lane"] == "Approver"
    assert all(event["__typename"] == "UserTaskEvent" for event in events)
    ids = [event["eventId"] for event in events]
    assert len(set(ids)) == len(ids)


def test_after_resumes_with_the_events_that_followed(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation = f"resume-{uuid.uuid4()}"
    the_filter = {"correlationId": [correlation]}

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with connect(gateway) as client:
            await client.subscribe("first", EVENTS, filter=the_filter)
            await asyncio.to_thread(poll, lambda: live_subscriptions(gateway) >= 1)
            _, task_id = await asyncio.to_thread(start_approval, engine, correlation)
            [waiting] = await client.data_until("first", lambda got: len(got) == 1)
            await client.complete("first")  # gone: what follows is missed by this connection
            await asyncio.to_thread(poll, lambda: live_subscriptions(gateway) == 0)
            await asyncio.to_thread(finished, engine, task_id, {"approved": True})
            # After the finish, the next task (lane Clerk) waits: two more events of this correlation.
            await client.subscribe("resumed", EVENTS, filter=the_filter, after=waiting["eventId"])
            replayed = await client.data_until("resumed", lambda got: len(got) == 2)
            return [waiting], replayed

    [waiting], replayed = asyncio.run(scenario())
    assert waiting["kind"] == "WAITING"
    assert [(event["kind"], event["task"]["name"]) for event in replayed] == [
        ("FINISHED", "Approve order"),
        ("WAITING", "Notify customer"),
    ]
    assert replayed[0]["task"]["id"] == waiting["task"]["id"]


def test_a_bad_after_is_refused_with_its_code(gateway: GatewayServer) -> None:
    async def scenario() -> list[str]:
        async with connect(gateway) as client:
            codes = []
            for number, after in enumerate(["not an event id", "0badcafe-1", "0badcafe-999999999"]):
                await client.subscribe(str(number), EVENTS, after=after)
                code, _ = await client.ending(str(number))
                codes.append(code)
            return codes

    assert asyncio.run(scenario()) == ["BAD_REQUEST", "CHANGES_EXPIRED", "CHANGES_EXPIRED"]
    poll(lambda: live_subscriptions(gateway) == 0)


def test_without_a_state_events_are_of_any_state_unlike_the_list() -> None:
    assert to_filter(None, any_state=True).states == ()
    assert to_filter(UserTaskFilter(), any_state=True).states == ()
    assert to_filter(None).states == ("suspended",)
    assert to_filter(UserTaskFilter()).states == ("suspended",)


# -- in process: the schema on the core, without servers ----------------------------------------------------


def in_process(engine: FakeEngine, limits: HubLimits | None = None) -> tuple[Context, ChangeHub]:
    service = TaskService(engine, ReadCache(ttl_seconds=0, max_entries=10), CursorCodec(b"k" * 32), ServiceLimits())
    hub = ChangeHub(invalidate=lambda: None, limits=limits or HubLimits())
    context = Context(
        service=service,
        request_id="req-7",
        caller_or_error=Caller("alice"),
        live=LiveService(service, hub),
        live_lists=LiveLists(service, hub),
    )
    return context, hub


async def first_result(query: str, context: Context) -> Any:
    schema = build_schema(max_depth=12, max_aliases=64, max_tokens=2000)
    stream = await schema.subscribe(query, context_value=context)
    async with aclosing(stream):
        return await anext(stream)


@pytest.mark.parametrize(
    ("failure", "code", "message"),
    [
        (errors.EngineUnavailable("The engine is unavailable: refused"), "ENGINE_UNAVAILABLE", "refused"),
        (RuntimeError("secret internals"), "INTERNAL_SERVER_ERROR", "Unexpected error."),
    ],
)
def test_a_failure_reaches_the_subscriber_with_its_code_and_nothing_internal(
    failure: Exception, code: str, message: str
) -> None:
    engine = FakeEngine([make_task(1)])

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise failure

    engine.query_tasks = broken  # type: ignore[method-assign]

    async def scenario() -> tuple[Any, int]:
        context, hub = in_process(engine)
        result = await first_result("subscription { userTaskList { __typename } }", context)
        return result, hub.subscription_count

    result, held = asyncio.run(scenario())
    assert result.data is None
    [error] = result.errors
    assert error.extensions["code"] == code
    assert error.extensions["requestId"] == "req-7"
    assert message in error.message
    assert "secret" not in error.message
    assert held == 0


def test_closing_a_subscription_frees_its_slot_in_the_hub() -> None:
    async def scenario() -> tuple[Any, int, int]:
        context, hub = in_process(FakeEngine([make_task(1)]))
        schema = build_schema(max_depth=12, max_aliases=64, max_tokens=2000)
        stream: Any = await schema.subscribe(EVENTS, context_value=context)
        waiting = asyncio.ensure_future(anext(stream))
        for _ in range(1000):  # the subscription takes its slot within a few steps of the event loop
            if hub.subscription_count:
                break
            await asyncio.sleep(0)
        hub.publish(EngineChange(ChangeKind.RESERVED, "task-00001"))
        result = await waiting
        held = hub.subscription_count
        await stream.aclose()
        return result, held, hub.subscription_count

    result, held, after_close = asyncio.run(scenario())
    assert result.errors is None
    event = result.data["userTaskEvents"]
    assert (event["__typename"], event["kind"], event["task"]["id"]) == ("UserTaskEvent", "RESERVED", "task-00001")
    assert (held, after_close) == (1, 0)


def test_the_hubs_endings_and_refusals_reach_the_subscriber_with_their_codes() -> None:
    """SLOW_CONSUMER (a full queue), SHUTTING_DOWN (the hub closes) and the hub's TOO_MANY_SUBSCRIPTIONS."""

    async def subscribed(hub: ChangeHub, stream: Any) -> asyncio.Future[Any]:
        """The stream's first result, once the stream holds its slot in the hub."""
        held = hub.subscription_count
        result = asyncio.ensure_future(anext(stream))
        for _ in range(1000):
            if hub.subscription_count > held:
                break
            await asyncio.sleep(0)
        return result

    async def scenario() -> list[str]:
        context, hub = in_process(FakeEngine([make_task(1)]), HubLimits(queue_size=2, per_caller=1))
        schema = build_schema(max_depth=12, max_aliases=64, max_tokens=2000)
        slow: Any = await schema.subscribe(EVENTS, context_value=context)
        slow_result = await subscribed(hub, slow)
        for _ in range(3):  # nobody reads in between: more than the queue holds
            hub.publish(EngineChange(ChangeKind.RESERVED, "task-00001"))
        results = [await slow_result]
        stopping: Any = await schema.subscribe(EVENTS, context_value=context)
        stopping_result = await subscribed(hub, stopping)
        results.append(await first_result(EVENTS, context))  # beyond the caller's one
        hub.close()
        results.append(await stopping_result)
        await slow.aclose()
        await stopping.aclose()
        return [result.errors[0].extensions["code"] for result in results]

    assert asyncio.run(scenario()) == ["SLOW_CONSUMER", "TOO_MANY_SUBSCRIPTIONS", "SHUTTING_DOWN"]


# -- userTaskList --------------------------------------------------------------------------------------------


def test_the_live_list_sends_a_snapshot_then_its_changes(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation = f"list-{uuid.uuid4()}"
    first_instance, first_task = start_approval(engine, correlation, amount=1)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], str]:
        async with connect(gateway) as client:
            await client.subscribe(
                "list", LIST, filter={"correlationId": [correlation]}, sort=[{"field": "STARTED_AT"}], first=10
            )
            [snapshot] = await client.data_until("list", lambda got: len(got) == 1)
            _, second_task = await asyncio.to_thread(start_approval, engine, correlation, 2)
            changes = await client.data_until("list", lambda got: any(c["totalCount"] == 2 for c in got))
            await asyncio.to_thread(finished, engine, first_task, {"approved": False})
            # The finished task leaves; the revision task (same correlation) comes in.
            changes += await client.data_until(
                "list", lambda got: any(first_task in c["removed"] for c in got if "removed" in c)
            )
            return snapshot, changes, second_task

    snapshot, changes, second_task = asyncio.run(scenario())
    assert snapshot["__typename"] == "UserTaskListSnapshot"
    assert snapshot["reason"] == "INITIAL"
    assert snapshot["totalCount"] == 1
    assert [task["id"] for task in snapshot["tasks"]] == [first_task]
    assert all(change["__typename"] == "UserTaskListChanges" for change in changes)
    added = next(change for change in changes if change["totalCount"] == 2)
    assert added["added"] == [{"index": 1, "task": added["added"][0]["task"]}]
    assert added["added"][0]["task"]["id"] == second_task
    assert added["order"] == [first_task, second_task]
    assert added["totalCount"] == 2
    last = changes[-1]
    assert first_task in last["removed"]
    assert first_task not in last["order"]
    assert second_task in last["order"]
    assert last["totalCount"] == len(last["order"])
    assert first_instance


# -- who sees what -------------------------------------------------------------------------------------------

ALICE_LANES = {"Approver", "Geschäftsführung"}
BOB_LANES = {"Clerk", "Controlling"}


def tasks_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every task a message holds (events, snapshots, changes)."""
    found = []
    for message in messages:
        if "task" in message:
            found.append(message["task"])
        found += message.get("tasks", [])
        for key in ("added", "updated"):
            found += [item["task"] for item in message.get(key, [])]
    return found


def ids_in(messages: list[dict[str, Any]]) -> set[str]:
    ids = {task["id"] for task in tasks_in(messages)}
    for message in messages:
        ids |= set(message.get("removed", [])) | set(message.get("order", []))
    return ids


def test_two_users_of_different_lanes_never_see_each_others_tasks(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation = f"lanes-{uuid.uuid4()}"
    the_filter = {"correlationId": [correlation]}
    alice = token_for(engine, "alice", "alice-secret")  # Approver, Geschäftsführung
    bob = token_for(engine, "bob", "bob-secret")  # Clerk, Controlling
    approvals: list[str] = []
    clerk_tasks: list[str] = []

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        async with (
            connect(gateway, init={"Authorization": f"Bearer {alice}"}) as alice_socket,
            connect(gateway, header_token=bob) as bob_socket,
        ):
            for socket in (alice_socket, bob_socket):
                await socket.subscribe("events", EVENTS, filter=the_filter)
                await socket.subscribe("list", LIST, filter=the_filter)
            await alice_socket.data_until("list", lambda got: len(got) == 1)
            await bob_socket.data_until("list", lambda got: len(got) == 1)
            await asyncio.to_thread(poll, lambda: live_subscriptions(gateway) >= 4)
            for amount in (10, 20, 30):
                instance, task_id = await asyncio.to_thread(start_approval, engine, correlation, amount)
                approvals.append(task_id)
                if amount != 30:  # approved: notifyCustomer (Clerk); rejected: reviseOrder (Clerk)
                    await asyncio.to_thread(finished, engine, task_id, {"approved": amount == 10})
                    [next_task] = await asyncio.to_thread(engine.user_tasks, processInstanceId=instance)
                    clerk_tasks.append(next_task["flowNodeInstanceId"])
            await asyncio.to_thread(reserve, engine, clerk_tasks[0], "bob")
            await asyncio.to_thread(finished, engine, clerk_tasks[0], {"notified": True}, bob)

            def saw(kind: str, task_id: str) -> Callable[[list[dict[str, Any]]], bool]:
                return lambda got: any(e.get("kind") == kind and e["task"]["id"] == task_id for e in got)

            seen = {
                "alice events": await alice_socket.data_until("events", saw("WAITING", approvals[2])),
                "bob events": await bob_socket.data_until("events", saw("FINISHED", clerk_tasks[0])),
            }
            # The lists settle: alice's shows her waiting approval, bob's his remaining clerk task.
            seen["alice list"] = await alice_socket.data_until(
                "list", lambda got: bool(got) and got[-1].get("order") == [approvals[2]]
            )
            seen["bob list"] = await bob_socket.data_until(
                "list", lambda got: bool(got) and got[-1].get("order") == [clerk_tasks[1]]
            )
            # Everything else either of them was sent by now (nothing more may come, but look).
            for socket, name in ((alice_socket, "alice"), (bob_socket, "bob")):
                for operation in ("events", "list"):
                    while not socket.inboxes[operation].empty():
                        message = socket.inboxes[operation].get_nowait()
                        assert isinstance(message, dict), message
                        assert message["type"] == "next", message
                        seen[f"{name} {operation}"].append(next(iter(message["payload"]["data"].values())))
            return seen

    seen = asyncio.run(scenario())
    alice_seen = seen["alice events"] + seen["alice list"]
    bob_seen = seen["bob events"] + seen["bob list"]
    assert {task["lane"] for task in tasks_in(alice_seen)} == {"Approver"}
    assert {task["lane"] for task in tasks_in(bob_seen)} == {"Clerk"}
    assert ids_in(alice_seen) == set(approvals)
    assert ids_in(bob_seen) == set(clerk_tasks)
    assert events_of(approvals[0], seen["alice events"]) == ["WAITING", "FINISHED"]
    assert events_of(clerk_tasks[0], seen["bob events"]) == ["WAITING", "RESERVED", "FINISHED"]


# -- authentication ------------------------------------------------------------------------------------------


def test_a_token_in_connection_init_is_the_callers_and_a_bad_one_answers_unauthenticated(
    engine: EngineServer, gateway: GatewayServer
) -> None:
    bob = token_for(engine, "bob", "bob-secret")
    query = 'subscription { userTaskList(filter: {lane: ["Clerk"]}, first: 0) { __typename } }'

    async def answer(header_token: str | None, init: dict[str, Any]) -> tuple[str, str] | dict[str, Any]:
        async with connect(gateway, header_token=header_token, init=init) as client:
            await client.subscribe("op", query)
            message = await client.take("op")
            if "errors" in message["payload"]:
                await client.subscribe("again", query)  # the connection stays; each operation is answered so
                code, error = await client.ending("again")
                return code, error["message"]
            data: dict[str, Any] = message["payload"]["data"]["userTaskList"]
            return data

    async def scenario() -> list[tuple[str, str] | dict[str, Any]]:
        return [
            await answer(None, {"Authorization": "Bearer not-a-jwt"}),
            await answer(None, {"authorization": "Basic Ym9iOnNlY3JldA=="}),
            await answer(None, {"Authorization": 42}),
            await answer("not-a-jwt", {}),
            await answer(bob, {"Authorization": "Bearer not-a-jwt"}),  # the connection's token wins
            await answer("not-a-jwt", {"authorization": f"Bearer {bob}"}),
            await answer(None, {"Authorization": f"Bearer {bob}", "X-Other": "header"}),
        ]

    answers = asyncio.run(scenario())
    assert answers[-2:] == [{"__typename": "UserTaskListSnapshot"}] * 2
    refusals = answers[:-2]
    for refusal in refusals:
        assert isinstance(refusal, tuple), refusals
        assert refusal[0] == "UNAUTHENTICATED"
    assert "JWT" in refusals[0][1]
    assert "Bearer" in refusals[1][1]
    assert "string" in refusals[2][1]


def test_without_anonymous_access_a_connection_needs_a_token(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(follow=False, GATEWAY_ALLOW_ANONYMOUS="false")

    async def scenario() -> str:
        async with connect(gateway) as client:
            await client.subscribe("op", EVENTS)
            code, error = await client.ending("op")
            assert "token" in error["message"]
            return code

    assert asyncio.run(scenario()) == "UNAUTHENTICATED"


# -- limits and hardening ------------------------------------------------------------------------------------


def test_a_connection_holds_at_most_its_subscriptions_and_completing_frees_a_slot(gateway: GatewayServer) -> None:
    """GATEWAY_SUBSCRIPTIONS_PER_CONNECTION is 20 by default; live lists of one query share one engine read."""
    query = "subscription { userTaskList(first: 1) { __typename } }"

    async def scenario() -> tuple[str, dict[str, Any]]:
        async with connect(gateway) as client:
            for number in range(20):
                await client.subscribe(str(number), query)
            for number in range(20):
                await client.data_until(str(number), lambda got: len(got) == 1)
            await client.subscribe("one too many", query)
            code, _ = await client.ending("one too many")
            await client.complete("0")
            await client.subscribe("again", query)
            [again] = await client.data_until("again", lambda got: len(got) == 1)
            await asyncio.to_thread(poll, lambda: live_subscriptions(gateway) == 20)
        return code, again

    code, again = asyncio.run(scenario())
    assert code == "TOO_MANY_SUBSCRIPTIONS"
    assert again == {"__typename": "UserTaskListSnapshot"}
    poll(lambda: live_subscriptions(gateway) == 0)  # the connection closed: every slot is free again


def test_document_limits_and_validation_apply_to_subscriptions(gateway: GatewayServer) -> None:
    aliases = " ".join(f"a{number}: __typename" for number in range(70))
    documents = {
        "aliases": f"subscription {{ userTaskEvents {{ {aliases} }} }}",
        "two root fields": "subscription { userTaskEvents { __typename } userTaskList { __typename } }",
        "bad first": "subscription { userTaskList(first: 1000) { __typename } }",
        "bad event filter": 'subscription { userTaskEvents(filter: {lane: [""]}) { __typename } }',
    }

    async def scenario() -> dict[str, str]:
        async with connect(gateway) as client:
            codes = {}
            for name, document in documents.items():
                await client.subscribe(name, document)
                codes[name], _ = await client.ending(name)
            return codes

    assert asyncio.run(scenario()) == {
        "aliases": "QUERY_TOO_COMPLEX",
        "two root fields": "BAD_REQUEST",
        "bad first": "BAD_REQUEST",
        "bad event filter": "BAD_REQUEST",
    }


def test_a_subscription_over_http_is_a_bad_request(gateway: GatewayServer) -> None:
    response = httpx.post(gateway.graphql_url, json={"query": "subscription { userTaskEvents { __typename } }"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "WebSocket" in error["message"]


def test_queries_over_one_websocket_read_fresh_tasks_each_time(engine: EngineServer, gateway: GatewayServer) -> None:
    """One context serves every operation of a connection: its DataLoader must not answer from an old operation."""
    _, task_id = start_approval(engine, f"fresh-{uuid.uuid4()}")
    query = "query($id: ID!) { userTask(id: $id) { reservedFor } }"

    async def scenario() -> list[Any]:
        async with connect(gateway) as client:
            await client.subscribe("before", query, id=task_id)
            before = await client.data_until("before", lambda got: len(got) == 1)
            # Through the gateway: a write ends the read cache's reuse (one made at the engine ends it when the
            # gateway hears the event, a moment later).
            reserved = await asyncio.to_thread(gateway.graphql, RESERVE_FOR, {"id": task_id, "owner": "carol"})
            assert reserved["data"]["reserveUserTask"]["reservedFor"] == "carol", reserved
            await client.subscribe("after", query, id=task_id)
            after = await client.data_until("after", lambda got: len(got) == 1)
            return before + after

    assert asyncio.run(scenario()) == [{"reservedFor": None}, {"reservedFor": "carol"}]


# -- endings -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_token_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine whose authority issues tokens that live 2 seconds (``--token-ttl``)."""
    server = EngineServer(data_dir=tmp_path_factory.mktemp("short") / "engine", extra_args=["--token-ttl", "2"])
    server.start()
    for path in sorted(EXAMPLES_DIR.glob("*.bpmn")):
        server.deploy_file(path)
    yield server
    server.stop()


def test_a_token_that_expires_ends_the_subscription(
    short_token_engine: EngineServer, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(short_token_engine, GATEWAY_JWT_LEEWAY_SECONDS=0)
    alice = token_for(short_token_engine, "alice", "alice-secret")

    async def scenario() -> tuple[str, str, dict[str, Any], float]:
        async with connect(gateway, init={"Authorization": f"Bearer {alice}"}) as client:
            await client.subscribe("events", EVENTS)
            await client.subscribe("list", LIST, first=1)
            events_code, error = await client.ending("events")
            list_code, _ = await client.ending("list")
            held = await asyncio.to_thread(live_subscriptions, gateway)
        return events_code, list_code, error, held

    events_code, list_code, error, held = asyncio.run(scenario())
    assert (events_code, list_code) == ("TOKEN_EXPIRED", "TOKEN_EXPIRED")
    assert "expired" in error["message"]
    assert held == 0


def sigterm(gateway: GatewayServer) -> int:
    """Stop ``gateway`` with SIGTERM; its exit code. A shutdown that hangs fails here (after 15 s)."""
    process = gateway.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    finally:
        gateway.stop()  # kills it if it hung


def test_stopping_the_gateway_ends_open_subscriptions(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()

    async def scenario() -> tuple[list[str | int | None], int]:
        async with connect(gateway) as client:
            await client.subscribe("events", EVENTS)
            await client.subscribe("list", LIST, first=1)
            await client.data_until("list", lambda got: len(got) == 1)
            stopping = asyncio.ensure_future(asyncio.to_thread(sigterm, gateway))
            endings: list[str | int | None] = []
            for operation in ("events", "list"):
                try:
                    endings.append((await client.ending(operation))[0])
                except Closed as closed:  # the server closed the connection first: a going-away close
                    endings.append(closed.code)
            return endings, await stopping

    endings, exit_code = asyncio.run(scenario())
    # python -m gateway ends live subscriptions (SHUTTING_DOWN) before uvicorn closes the WebSockets (1012); a
    # subscription that had not sent its last message by then sees the close.
    for ending in endings:
        assert ending in ("SHUTTING_DOWN", 1001, 1012), endings
    assert exit_code in (0, -signal.SIGTERM)  # uvicorn ends by raising the signal it caught, once shut down
