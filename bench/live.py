"""``python -m bench.live``: the live task list benchmark (GraphQL subscriptions), side by side in one run.

    python -m bench.live            # about a minute; prints one markdown table
    python -m bench.live --quick    # fewer changes and 100 instead of 1,000 subscribers (smoke run)

Processes, each its own on free loopback ports: a fresh embedded engine (``python -m embedded_engine``, data in
``.data/bench/live``) holding a few dozen waiting "Approve order" tasks, and one gateway (``python -m gateway``,
configured by environment only, subscription limits raised for 1,000 subscribers of one caller). This process
drives the changes (reserve / cancel the reservation of a task **directly at the engine**, so a change costs the
gateway nothing) and holds every subscriber: a python-socketio client connected to the engine as the gateway
itself is (namespace ``/api``, path ``/socket.io``), and graphql-transport-ws clients (aiohttp) on the gateway.

1. **Latency engine -> subscriber**: for each change, the time from just before the HTTP call to the engine until
   the direct Socket.IO client has the event, and until a ``userTaskEvents`` subscriber has it; next to it the
   engine's answer to the one read the gateway makes per event (the changed task, with the subscriber's token).
2. **Memory**: the gateway's RSS (VmRSS) before and after opening the WebSocket connections, and after 1,000 idle
   ``userTaskEvents`` subscriptions on them (20 per connection).
3. **Fan-out**: one change to those 1,000 subscribers: time until the first and the last has it.
4. **Engine calls of live lists**: 1,000 ``userTaskList`` subscribers of one list vs 1 subscriber; 1,000 spread
   over 10 distinct lists vs 10 subscribers, one per list: the gateway's engine calls (``GET /metrics``) caused by
   one change, counted from just before it until every subscriber has its update and a settle time has passed.

Every message is checked (the expected task, kind, list update); a wrong or missing one aborts the run (exit 1).
Times are taken with ``time.perf_counter`` in this process; all subscribers share its event loop, so the
fan-out's "last" includes reading 1,000 WebSocket messages here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import socketio

from gateway.engine import UserTaskClient
from gateway.metrics import metric_in

from .load import percentile
from .report import Row, load_average, machine, ms, now, ratio, render, update_readme, verdict
from .seed import APPROVAL_BPMN, MODEL_ID, token_of
from .servers import API, DUMMY_TOKEN, ENGINE_HEADERS, REPO, Engine, Gateway, rss_bytes

DATA = REPO / ".data" / "bench" / "live"
COMMAND = ".venv/bin/python -m bench.live"
OWNER = "bench-live"

EVENTS = """
subscription Events($filter: UserTaskFilter) {
  userTaskEvents(filter: $filter) {
    __typename
    ... on UserTaskEvent { eventId kind task { id reservedFor } }
  }
}"""

LIST = """
subscription List($filter: UserTaskFilter, $first: Int) {
  userTaskList(filter: $filter, first: $first) {
    __typename
    ... on UserTaskListSnapshot { eventId totalCount tasks { id reservedFor } }
    ... on UserTaskListChanges {
      eventId totalCount removed order
      added { task { id reservedFor } }
      updated { task { id reservedFor } }
    }
  }
}"""

#: The engine's event for each change this benchmark makes -> the kind a ``userTaskEvents`` message names.
KINDS = {"user_task_reserved": "RESERVED", "user_task_reservation_canceled": "RESERVATION_CANCELLED"}


def progress(message: str) -> None:
    print(f"bench.live: {message}", file=sys.stderr, flush=True)


class BenchFailure(SystemExit):
    """A wrong or missing message, or a broken server: the run is void."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench.live: FAILED: {message}")


@dataclass(frozen=True)
class Settings:
    """Sizes of one run (``--quick`` shrinks them; the table says which were used)."""

    changes: int = 200  # measured changes for the latency series
    warmup: int = 20
    subscribers: int = 1_000  # idle events subscribers, fan-out subscribers, list subscribers
    per_connection: int = 20
    fanout_rounds: int = 5
    lists: int = 10
    tasks: int = 40  # waiting tasks in the engine
    settle: float = 1.0  # seconds before an RSS reading
    #: seconds after a change before the engine calls are read (late refreshes are counted too; the live list
    #: interval is 0.1 s)
    calls_settle: float = 0.5

    @classmethod
    def quick(cls) -> Settings:
        return cls(changes=30, warmup=5, subscribers=100, fanout_rounds=2, tasks=24, settle=0.3, calls_settle=0.3)


# -- the engine, driven directly ---------------------------------------------------------------------------------


class EngineDriver:
    """The engine's HTTP API as the benchmark uses it (anonymous dummy token)."""

    def __init__(self, session: aiohttp.ClientSession, engine: Engine) -> None:
        self._session = session
        self._api = engine.url + API
        #: task id -> reserved now
        self.reserved: dict[str, bool] = {}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._session.request(method, self._api + path, headers=ENGINE_HEADERS, **kwargs) as response:
            body = await response.read()
            if response.status >= 300:
                raise BenchFailure(f"engine {method} {path}: {response.status} {body[:300]!r}")
            return json.loads(body) if body else None

    async def waiting_tasks(self) -> list[str]:
        params = {"flowNodeType": "bpmn:UserTask", "state": "suspended", "processModelId": MODEL_ID, "limit": "1000"}
        found = await self._call("GET", "/flow_node_instances", params=params)
        return [str(task["flowNodeInstanceId"]) for task in found["flowNodeInstances"]]

    async def read_task(self, task_id: str) -> None:
        """The read the gateway makes for each event (its ``get_tasks``): one task by id, any state."""
        params = {"flowNodeType": "bpmn:UserTask", "flowNodeInstanceId": task_id}
        found = await self._call("GET", "/flow_node_instances", params=params)
        if len(found["flowNodeInstances"]) != 1:
            raise BenchFailure(f"engine read of task {task_id}: {len(found['flowNodeInstances'])} tasks")

    async def toggle(self, task_id: str) -> str:
        """Reserve the task, or cancel its reservation: the engine event this causes."""
        if self.reserved.get(task_id, False):
            await self._call("DELETE", f"/user_tasks/{task_id}/cancel-reservation")
            self.reserved[task_id] = False
            return "user_task_reservation_canceled"
        await self._call("PUT", f"/user_tasks/{task_id}/reserve", json={"actualOwnerId": OWNER})
        self.reserved[task_id] = True
        return "user_task_reserved"


def prepare_engine(engine: Engine, tasks: int) -> None:
    headers = ENGINE_HEADERS
    deployed = httpx.post(
        engine.api + "/process_definitions",
        json={"xml": APPROVAL_BPMN.read_text(encoding="utf-8"), "overwriteExisting": True},
        headers=headers,
        timeout=30,
    )
    deployed.raise_for_status()
    for index in range(tasks):
        started = httpx.post(
            f"{engine.api}/process_models/{MODEL_ID}/start",
            json={"processModelId": MODEL_ID, "returnOn": 1, "initialToken": token_of(index)},
            headers=headers,
            timeout=30,
        )
        started.raise_for_status()


# -- who is waiting for what ------------------------------------------------------------------------------------


@dataclass
class Expectation:
    """One change: who has heard of it, when (``perf_counter``), against ``started`` (just before the call)."""

    event: str
    task_id: str
    started: float
    expected: int  # GraphQL subscribers that must hear of it
    engine_at: float | None = None
    arrivals: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    wants_engine: bool = True

    def check(self) -> None:
        if len(self.arrivals) >= self.expected and (self.engine_at is not None or not self.wants_engine):
            self.done.set()


class Watch:
    """Routes what the subscribers and the direct Socket.IO client receive to the current expectation."""

    def __init__(self) -> None:
        self.current: Expectation | None = None
        self.failures: list[str] = []

    def engine_event(self, event: str, body: Any, at: float) -> None:
        current = self.current
        if (
            current is not None
            and current.engine_at is None
            and event == current.event
            and isinstance(body, dict)
            and body.get("flowNodeInstanceId") == current.task_id
        ):
            current.engine_at = at
            current.check()

    def task_event(self, payload: dict[str, Any], at: float) -> None:
        current = self.current
        message = (payload.get("data") or {}).get("userTaskEvents") or {}
        if payload.get("errors") or message.get("__typename") != "UserTaskEvent":
            self.failures.append(f"userTaskEvents: unexpected message {json.dumps(payload)[:300]}")
            return
        if current is None:
            self.failures.append(f"userTaskEvents: a message while no change was made: {json.dumps(payload)[:300]}")
            return
        task = message.get("task") or {}
        if task.get("id") != current.task_id or message.get("kind") != KINDS[current.event]:
            self.failures.append(
                f"userTaskEvents: {message.get('kind')} of {task.get('id')} while waiting for"
                f" {KINDS[current.event]} of {current.task_id}"
            )
            return
        current.arrivals.append(at)
        current.check()

    async def wait(self, expectation: Expectation, what: str, seconds: float = 20.0) -> None:
        try:
            await asyncio.wait_for(expectation.done.wait(), seconds)
        except TimeoutError:
            raise BenchFailure(
                f"{what}: after {seconds:g} s {len(expectation.arrivals)} of {expectation.expected} subscribers"
                f" had the change; direct Socket.IO client: {'yes' if expectation.engine_at else 'no'};"
                f" {self.failures[:3]}"
            ) from None
        if self.failures:
            raise BenchFailure(f"{what}: {self.failures[0]}")


class EngineListener:
    """A Socket.IO client connected straight to the engine, as the gateway's own stream is."""

    def __init__(self, engine: Engine, watch: Watch) -> None:
        self._url = engine.url
        self._sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        for name in KINDS:
            self._sio.on(name, self._handler(name, watch), namespace="/api")

    @staticmethod
    def _handler(name: str, watch: Watch) -> Callable[..., Any]:
        async def handler(*args: Any) -> None:
            watch.engine_event(name, args[0] if args else None, time.perf_counter())

        return handler

    async def connect(self) -> None:
        await self._sio.connect(
            self._url,
            headers={"Authorization": DUMMY_TOKEN},
            namespaces=["/api"],
            socketio_path="socket.io",
            transports=["websocket"],
            wait_timeout=10,
        )

    async def close(self) -> None:
        await self._sio.disconnect()


# -- a graphql-transport-ws client --------------------------------------------------------------------------------

OnNext = Callable[[dict[str, Any], float], None]


class GraphQLSocket:
    """One WebSocket to the gateway's ``/graphql`` speaking graphql-transport-ws, holding several subscriptions."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url.replace("http://", "ws://", 1)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._handlers: dict[str, OnNext] = {}
        self.failures: list[str] = []
        self._next_id = 0

    async def open(self) -> None:
        self._ws = await self._session.ws_connect(self._url, protocols=("graphql-transport-ws",), max_msg_size=0)
        await self._ws.send_json({"type": "connection_init", "payload": {}})
        while True:
            message = await self._ws.receive_json(timeout=10)
            if message.get("type") == "connection_ack":
                break
            if message.get("type") == "ping":
                await self._ws.send_json({"type": "pong"})
                continue
            raise BenchFailure(f"graphql-transport-ws: {message} instead of connection_ack")
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def subscribe(self, query: str, variables: dict[str, Any], on_next: OnNext) -> str:
        assert self._ws is not None
        self._next_id += 1
        subscription_id = str(self._next_id)
        self._handlers[subscription_id] = on_next
        payload = {"query": query, "variables": variables}
        await self._ws.send_json({"id": subscription_id, "type": "subscribe", "payload": payload})
        return subscription_id

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            at = time.perf_counter()
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            kind = message.get("type")
            if kind == "next":
                handler = self._handlers.get(message.get("id"))
                if handler is not None:
                    handler(message.get("payload") or {}, at)
            elif kind == "ping":
                await self._ws.send_json({"type": "pong"})
            elif kind in ("error", "complete"):
                self.failures.append(f"subscription {message.get('id')}: {json.dumps(message)[:300]}")
        if self._ws.close_code not in (None, 1000):
            self.failures.append(f"the gateway closed the WebSocket: {self._ws.close_code}")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class Subscribers:
    """``count`` subscriptions over ``count / per_connection`` WebSockets."""

    def __init__(self, session: aiohttp.ClientSession, gateway: Gateway, per_connection: int) -> None:
        self._session = session
        self._gateway = gateway
        self._per_connection = per_connection
        self.sockets: list[GraphQLSocket] = []

    async def connect(self, connections: int) -> None:
        sockets = [GraphQLSocket(self._session, self._gateway.graphql_url) for _ in range(connections)]
        await asyncio.gather(*(sock.open() for sock in sockets))
        self.sockets.extend(sockets)

    async def subscribe(self, plan: Sequence[tuple[str, dict[str, Any], OnNext]]) -> None:
        """Subscribe ``plan`` (query, variables, handler) round-robin over the sockets, ``per_connection`` each."""
        needed = -(-len(plan) // self._per_connection)
        if len(self.sockets) < needed:
            await self.connect(needed - len(self.sockets))
        for index, (query, variables, on_next) in enumerate(plan):
            await self.sockets[index // self._per_connection].subscribe(query, variables, on_next)

    def failures(self) -> list[str]:
        return [failure for sock in self.sockets for failure in sock.failures]

    async def close(self) -> None:
        await asyncio.gather(*(sock.close() for sock in self.sockets))
        self.sockets.clear()


# -- the gateway's figures ------------------------------------------------------------------------------------------


class Metrics:
    def __init__(self, session: aiohttp.ClientSession, gateway: Gateway) -> None:
        self._session = session
        self._url = gateway.url + "/metrics"

    async def read(self) -> str:
        async with self._session.get(self._url) as response:
            return await response.text()

    async def value(self, name: str) -> float:
        return metric_in(await self.read(), name)

    async def engine_calls(self) -> int:
        return int(await self.value("gateway_engine_requests_total"))

    async def wait_for(
        self, name: str, wanted: float, what: str, failures: Callable[[], list[str]], seconds: float = 30.0
    ) -> None:
        """Until the gauge ``name`` reads ``wanted`` (fails at once when a subscriber saw an error)."""
        deadline = time.monotonic() + seconds
        value = await self.value(name)
        while value != wanted:
            if failures():
                raise BenchFailure(f"{what}: {failures()[0]}")
            if time.monotonic() > deadline:
                raise BenchFailure(f"{what}: {name} is {value:g}, not {wanted:g}, after {seconds:g} s")
            await asyncio.sleep(0.05)
            value = await self.value(name)


# -- the run --------------------------------------------------------------------------------------------------------


@dataclass
class Lab:
    settings: Settings
    engine: Engine
    gateway: Gateway
    session: aiohttp.ClientSession
    driver: EngineDriver
    metrics: Metrics
    watch: Watch
    listener: EngineListener
    client: UserTaskClient
    tasks: list[str]
    rows: list[Row] = field(default_factory=list)

    async def change(
        self, task_id: str, expected: int, what: str, *, wants_engine: bool = True, failures: Callable[[], list[str]]
    ) -> Expectation:
        """Toggle ``task_id``'s reservation at the engine and wait until ``expected`` subscribers had it."""
        event = "user_task_reservation_canceled" if self.driver.reserved.get(task_id) else "user_task_reserved"
        expectation = Expectation(event, task_id, 0.0, expected, wants_engine=wants_engine)
        self.watch.current = expectation
        expectation.started = time.perf_counter()
        made = await self.driver.toggle(task_id)
        assert made == event
        expectation.check()
        await self.watch.wait(expectation, what)
        self.watch.current = None
        if failures():
            raise BenchFailure(f"{what}: {failures()[0]}")
        return expectation


def no_failures() -> list[str]:
    return []


def events_filter() -> dict[str, Any]:
    return {"filter": {"processModelId": [MODEL_ID]}}


async def latency(lab: Lab) -> None:
    settings = lab.settings
    progress(f"1. latency: {settings.warmup} + {settings.changes} changes")
    subscribers = Subscribers(lab.session, lab.gateway, settings.per_connection)
    await subscribers.subscribe([(EVENTS, events_filter(), lab.watch.task_event)])
    await lab.metrics.wait_for("gateway_live_subscriptions", 1, "latency: subscribing", subscribers.failures)
    direct: list[float] = []
    gateway: list[float] = []
    added: list[float] = []
    reads: list[float] = []
    client_reads: list[float] = []
    calls_before = 0
    for index in range(settings.warmup + settings.changes):
        if index == settings.warmup:
            calls_before = await lab.metrics.engine_calls()
        task_id = lab.tasks[index % len(lab.tasks)]
        seen = await lab.change(task_id, 1, "latency", failures=subscribers.failures)
        assert seen.engine_at is not None
        # the engine's answer to the read the gateway makes for this event, right after it (side by side)
        read_started = time.perf_counter()
        await lab.driver.read_task(task_id)
        read_took = time.perf_counter() - read_started
        # the same read through the engine client the gateway uses (httpx over aiohttp, parsing, retries)
        client_started = time.perf_counter()
        found = await lab.client.get_user_tasks_by_ids([task_id])
        client_took = time.perf_counter() - client_started
        if len(found) != 1:
            raise BenchFailure(f"latency: the engine client read {len(found)} tasks for {task_id}")
        if index >= settings.warmup:
            direct.append(seen.engine_at - seen.started)
            gateway.append(seen.arrivals[0] - seen.started)
            added.append(seen.arrivals[0] - seen.engine_at)
            reads.append(read_took)
            client_reads.append(client_took)
    calls = await lab.metrics.engine_calls() - calls_before
    await subscribers.close()
    await lab.metrics.wait_for("gateway_live_subscriptions", 0, "latency: unsubscribing", no_failures)

    def p(values: list[float], fraction: float) -> float:
        return percentile(sorted(values), fraction) * 1000

    n = settings.changes
    lab.rows += [
        Row(
            "1",
            f"engine -> direct Socket.IO client, {n} changes: p50 / p99",
            f"{ms(p(direct, 0.5))} / {ms(p(direct, 0.99))}",
        ),
        Row(
            "1",
            "engine -> gateway userTaskEvents subscriber: p50 / p99",
            f"{ms(p(gateway, 0.5))} / {ms(p(gateway, 0.99))}",
        ),
        Row(
            "1",
            "gateway adds (subscriber minus direct, per change): p50 / p99",
            f"{ms(p(added, 0.5))} / {ms(p(added, 0.99))}",
            "p50 < 5 ms",
            verdict(p(added, 0.5) < 5),
        ),
        Row("1", "gateway / direct, p50", ratio(p(gateway, 0.5) / p(direct, 0.5))),
        Row(
            "1",
            "engine read of the changed task (the gateway's one read per event): p50 / p99",
            f"{ms(p(reads, 0.5))} / {ms(p(reads, 0.99))}",
        ),
        Row(
            "1",
            "the same read through the gateway's engine client (UserTaskClient, in this process): p50 / p99",
            f"{ms(p(client_reads, 0.5))} / {ms(p(client_reads, 0.99))}",
        ),
        Row("1", "engine calls per change, 1 subscriber", f"{calls / n:g} ({calls} for {n})", "1", verdict(calls == n)),
    ]


async def memory_and_fan_out(lab: Lab) -> None:
    settings = lab.settings
    count = settings.subscribers
    connections = -(-count // settings.per_connection)
    progress(f"2. memory: {count} idle userTaskEvents subscriptions on {connections} WebSockets")
    pid = lab.gateway.pid
    gc.collect()
    await asyncio.sleep(settings.settle)
    before = rss_bytes(pid)
    subscribers = Subscribers(lab.session, lab.gateway, settings.per_connection)
    await subscribers.connect(connections)
    await asyncio.sleep(settings.settle)
    with_connections = rss_bytes(pid)
    await subscribers.subscribe([(EVENTS, events_filter(), lab.watch.task_event)] * count)
    await lab.metrics.wait_for("gateway_live_subscriptions", count, "memory: subscribing", subscribers.failures)
    await asyncio.sleep(settings.settle)
    with_subscriptions = rss_bytes(pid)
    per_connection = (with_connections - before) / connections
    per_subscription = (with_subscriptions - with_connections) / count

    progress(f"3. fan-out: {settings.fanout_rounds} changes to {count} subscribers")
    firsts: list[float] = []
    lasts: list[float] = []
    directs: list[float] = []
    calls: list[int] = []
    for round_index in range(settings.fanout_rounds + 1):  # the first round warms up
        calls_before = await lab.metrics.engine_calls()
        seen = await lab.change(
            lab.tasks[round_index % len(lab.tasks)], count, "fan-out", failures=subscribers.failures
        )
        await asyncio.sleep(settings.calls_settle)
        if round_index == 0:
            continue
        calls.append(await lab.metrics.engine_calls() - calls_before)
        assert seen.engine_at is not None
        firsts.append(min(seen.arrivals) - seen.started)
        lasts.append(max(seen.arrivals) - seen.started)
        directs.append(seen.engine_at - seen.started)
        if len(seen.arrivals) != count:
            raise BenchFailure(f"fan-out: {len(seen.arrivals)} messages for {count} subscribers")
    await subscribers.close()
    await lab.metrics.wait_for("gateway_live_subscriptions", 0, "fan-out: unsubscribing", no_failures)
    # Is the growth kept per subscription, or a high-water mark the next subscriptions reuse?
    await asyncio.sleep(settings.settle)
    closed = rss_bytes(pid)
    again = Subscribers(lab.session, lab.gateway, settings.per_connection)
    await again.subscribe([(EVENTS, events_filter(), lab.watch.task_event)] * count)
    await lab.metrics.wait_for("gateway_live_subscriptions", count, "memory: subscribing again", again.failures)
    await asyncio.sleep(settings.settle)
    reopened = rss_bytes(pid)
    await again.close()
    await lab.metrics.wait_for("gateway_live_subscriptions", 0, "memory: unsubscribing again", no_failures)

    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    thousands = f"{count:,}"
    lab.rows += [
        Row(
            "2",
            f"gateway RSS before / with {connections} WebSockets / with {thousands} idle subscriptions",
            f"{before / 2**20:.1f} / {with_connections / 2**20:.1f} / {with_subscriptions / 2**20:.1f} MiB",
        ),
        Row(
            "2",
            "per idle userTaskEvents subscription",
            f"{per_subscription / 1024:.1f} KiB ({per_subscription:,.0f} bytes)",
        ),
        Row("2", "per WebSocket connection (graphql-transport-ws, acknowledged)", f"{per_connection / 1024:.1f} KiB"),
        Row(
            "2",
            f"gateway RSS after closing them all / with {thousands} new ones (new WebSockets)",
            f"{closed / 2**20:.1f} / {reopened / 2**20:.1f} MiB",
        ),
        Row(
            "2",
            f"per subscription, the second {thousands} (RSS is a high-water mark)",
            f"{(reopened - closed) / count / 1024:.1f} KiB",
        ),
        Row(
            "3",
            f"one change fanned out to {thousands} subscribers: first / last (median of {settings.fanout_rounds})",
            f"{ms(median_ms(firsts))} / {ms(median_ms(lasts))}",
        ),
        Row("3", "same, slowest round: last", ms(max(lasts) * 1000)),
        Row("3", "direct Socket.IO client in those rounds (median)", ms(median_ms(directs))),
        Row("3", "last / first subscriber, median", ratio(statistics.median(lasts) / statistics.median(firsts))),
        Row(
            "3",
            f"engine calls per change, {thousands} subscribers (one token)",
            f"{max(calls)} (rounds: {', '.join(map(str, calls))})",
            "1",
            verdict(max(calls) == 1),
        ),
    ]


@dataclass
class ListSubscriber:
    """One ``userTaskList`` subscription: its snapshot, then whether it got the update of the current change."""

    watch: Watch
    snapshot: list[str] | None = None
    updated: bool = False
    failures: list[str] = field(default_factory=list)
    on_update: Callable[[], None] = lambda: None

    def on_next(self, payload: dict[str, Any], at: float) -> None:
        message = (payload.get("data") or {}).get("userTaskList") or {}
        kind = message.get("__typename")
        if payload.get("errors") or kind not in ("UserTaskListSnapshot", "UserTaskListChanges"):
            self.failures.append(f"userTaskList: unexpected message {json.dumps(payload)[:300]}")
        elif kind == "UserTaskListSnapshot":
            if self.snapshot is not None:
                self.failures.append("userTaskList: a second snapshot")
            self.snapshot = [task["id"] for task in message["tasks"]]
        else:
            current = self.watch.current
            changed = {entry["task"]["id"] for entry in message["updated"]}
            if current is None or current.task_id not in changed:
                self.failures.append(f"userTaskList: changes while none was made: {json.dumps(message)[:300]}")
            elif not self.updated:
                self.updated = True
                current.arrivals.append(at)
                current.check()


async def list_scenario(lab: Lab, subscribers: int, lists: int) -> tuple[int, int, float]:
    """``subscribers`` over ``lists`` distinct lists (the same filter, ``first`` 11, 12, …): engine calls to open
    them, engine calls caused by one change of a task on every list, and the time until the last had it."""
    settings = lab.settings
    firsts = [11 + index for index in range(lists)]
    listeners = [ListSubscriber(lab.watch) for _ in range(subscribers)]
    plan = [
        (LIST, {**events_filter(), "first": firsts[index % lists]}, listener.on_next)
        for index, listener in enumerate(listeners)
    ]
    connections = Subscribers(lab.session, lab.gateway, settings.per_connection)
    await connections.connect(-(-subscribers // settings.per_connection))

    def failures() -> list[str]:
        return connections.failures() + [failure for listener in listeners for failure in listener.failures]

    # a change nobody subscribes to empties the gateway's read cache, so the lists are opened cold
    heard = await lab.metrics.value("gateway_engine_events_total")
    await lab.driver.toggle(lab.tasks[-1])
    await lab.metrics.wait_for("gateway_engine_events_total", heard + 1, "live lists: emptying the cache", no_failures)
    calls_before_open = await lab.metrics.engine_calls()
    await connections.subscribe(plan)
    deadline = time.monotonic() + 30
    while any(listener.snapshot is None for listener in listeners):
        if failures():
            raise BenchFailure(f"live lists: {failures()[0]}")
        if time.monotonic() > deadline:
            missing = sum(listener.snapshot is None for listener in listeners)
            raise BenchFailure(f"live lists: {missing} of {subscribers} subscribers without a snapshot after 30 s")
        await asyncio.sleep(0.02)
    await lab.metrics.wait_for("gateway_live_lists", lists, "live lists: opening", failures)
    await asyncio.sleep(settings.calls_settle)
    open_calls = await lab.metrics.engine_calls() - calls_before_open
    top = {listener.snapshot[0] for listener in listeners if listener.snapshot}
    if len(top) != 1:
        raise BenchFailure(f"live lists: the snapshots start with different tasks: {sorted(top)}")
    calls_before = await lab.metrics.engine_calls()
    seen = await lab.change(
        top.pop(), subscribers, f"live lists ({subscribers} on {lists})", wants_engine=False, failures=failures
    )
    await asyncio.sleep(settings.calls_settle)
    calls = await lab.metrics.engine_calls() - calls_before
    await connections.close()
    await lab.metrics.wait_for("gateway_live_subscriptions", 0, "live lists: unsubscribing", no_failures)
    await lab.metrics.wait_for("gateway_live_lists", 0, "live lists: unsubscribing", no_failures)
    return open_calls, calls, max(seen.arrivals) - seen.started


async def live_lists(lab: Lab) -> None:
    settings = lab.settings
    many, lists = settings.subscribers, settings.lists
    progress(f"4. live lists: 1 and {many} subscribers of one list, {lists} and {many} over {lists} lists")
    _, one_calls, one_took = await list_scenario(lab, 1, 1)
    many_open, many_calls, many_took = await list_scenario(lab, many, 1)
    _, few_calls, few_took = await list_scenario(lab, lists, lists)
    spread_open, spread_calls, spread_took = await list_scenario(lab, many, lists)
    thousands = f"{many:,}"
    lab.rows += [
        Row("4", "engine calls for one change: 1 subscriber of one list", str(one_calls)),
        Row(
            "4",
            f"engine calls for one change: {thousands} subscribers of that list",
            str(many_calls),
            f"= {one_calls}",
            verdict(many_calls == one_calls),
        ),
        Row("4", f"engine calls for one change: {lists} subscribers, one per list ({lists} lists)", str(few_calls)),
        Row(
            "4",
            f"engine calls for one change: {thousands} subscribers over those {lists} lists",
            str(spread_calls),
            f"= {few_calls}",
            verdict(spread_calls == few_calls),
        ),
        Row(
            "4",
            f"engine calls to open {thousands} subscribers of one list / over {lists} lists",
            f"{many_open} / {spread_open}",
        ),
        Row(
            "4",
            f"change -> last list subscriber: 1 / {thousands} of one list",
            f"{ms(one_took * 1000)} / {ms(many_took * 1000)}",
        ),
        Row(
            "4",
            f"change -> last list subscriber: {lists} / {thousands} over {lists} lists",
            f"{ms(few_took * 1000)} / {ms(spread_took * 1000)}",
        ),
    ]


async def measure(settings: Settings, engine: Engine, gateway: Gateway, only: str) -> list[Row]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        driver = EngineDriver(session, engine)
        tasks = await driver.waiting_tasks()
        if len(tasks) != settings.tasks:
            raise BenchFailure(f"the engine holds {len(tasks)} waiting tasks instead of {settings.tasks}")
        watch = Watch()
        listener = EngineListener(engine, watch)
        await listener.connect()
        metrics = Metrics(session, gateway)
        client = UserTaskClient(engine.url)
        lab = Lab(settings, engine, gateway, session, driver, metrics, watch, listener, client, tasks)
        try:
            if "1" in only:
                await latency(lab)
            if "2" in only or "3" in only:
                await memory_and_fan_out(lab)
            if "4" in only:
                await live_lists(lab)
        finally:
            await listener.close()
            await client.aclose()
        return lab.rows


@contextmanager
def servers(
    settings: Settings, data: Path, profile: Path | None = None, *, tree: bool = False
) -> Iterator[tuple[Engine, Gateway]]:
    """The engine (fresh, with ``settings.tasks`` waiting tasks) and the gateway; ``profile``: run the gateway
    under pyinstrument and write its flat report (self time) there when it stops."""
    shutil.rmtree(data, ignore_errors=True)
    logs = data / "logs"
    engine = Engine("engine-live", logs, data_dir=data / "engine")
    limit = str(settings.subscribers * 2)
    launcher: tuple[str, ...] = (sys.executable,)
    if profile is not None:
        flat = () if tree else ("-p", "flat=true", "-p", "flat_time=self")
        launcher = (sys.executable, "-m", "pyinstrument", "-r", "text", "--no-color", *flat, "-o", str(profile))
    gateway = Gateway(
        "gateway-live",
        logs,
        launcher=launcher,
        env={
            "GATEWAY_SUBSCRIPTIONS_PER_CALLER": limit,
            "GATEWAY_MAX_SUBSCRIPTIONS": limit,
            "GATEWAY_SUBSCRIPTIONS_PER_CONNECTION": str(settings.per_connection),
        },
    )
    try:
        progress("starting the engine, then the gateway while the engine's tasks are started")
        engine.start()
        gateway.engine_url = engine.url
        with ThreadPoolExecutor(1) as pool:
            starting = pool.submit(gateway.start)
            prepare_engine(engine, settings.tasks)
            starting.result()
        yield engine, gateway
    finally:
        gateway.stop(signal.SIGINT if profile is not None else signal.SIGTERM)  # pyinstrument reports on SIGINT
        engine.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer changes, 100 subscribers (smoke run)")
    parser.add_argument("--update-readme", action="store_true", help="write the table into bench/README.md")
    parser.add_argument("--only", default="1234", help="which figures, e.g. 3 (2 and 3 always run together)")
    parser.add_argument(
        "--profile", action="store_true", help="run the gateway under pyinstrument and print where its time went"
    )
    parser.add_argument("--tree", action="store_true", help="with --profile: the call tree instead of the flat list")
    parser.add_argument(
        "--data-dir", type=Path, default=DATA, help=f"the engine's data and the logs (emptied first; default {DATA})"
    )
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    started = time.perf_counter()
    load_before = load_average()
    profile = args.data_dir.parent / "live-profile.txt" if args.profile else None
    with servers(settings, args.data_dir, profile, tree=args.tree) as (engine, gateway):
        rows = asyncio.run(measure(settings, engine, gateway, args.only))
    elapsed = time.perf_counter() - started
    passed = sum(row.verdict == "PASS" for row in rows)
    missed = sum(row.verdict == "MISS" for row in rows)
    text = "\n".join(
        [
            f"machine: {machine()}",
            f"date: {now()}; command: {COMMAND}{' --quick' if args.quick else ''}; took {elapsed:.0f} s;"
            f" load average {load_before} before, {load_average()} after ({len(os.sched_getaffinity(0))} cores)",
            f"settings: {settings.changes} changes (+{settings.warmup} warm-up), {settings.subscribers} subscribers,"
            f" {settings.per_connection} per WebSocket, {settings.fanout_rounds} fan-out rounds (+1 warm-up),"
            f" {settings.lists} lists, {settings.tasks} waiting tasks",
            "",
            render(rows),
            "",
            f"{passed} targets met, {missed} missed.",
        ]
    )
    print(text)
    if profile is not None:
        print(f"\ngateway profile ({profile}):\n{profile.read_text() if profile.exists() else 'missing'}")
    if args.update_readme:
        update_readme("```\n" + text + "\n```", "bench-live")
    return 0


if __name__ == "__main__":
    sys.exit(main())
