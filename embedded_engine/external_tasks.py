"""External tasks: the work an engine hands to workers, and the API they fetch, lock, finish and fail it through.

A ``bpmn:serviceTask camunda:type="external" camunda:topic="…"`` that the token reaches waits for a worker (its
flow node instance is ``suspended``). The engine then keeps an *external task* for it, as the real ProcessCube
engine does (shapes from @5minds/processcube_engine_sdk 7.1.2 ``DataModels/ExternalTask``, behaviour from the
workers of @5minds/processcube_engine_client 6.1.4 and processcube-client 6.1.2; ``docs/external-tasks.md`` has
the whole contract and every choice made where those sources are silent). Routes, under ``/atlas_engine/api/v1``:

- ``GET /external_tasks/deployed_topics``: the topics of every deployed external task.
- ``POST /external_tasks/fetch_and_lock`` ``{workerId, topicName, maxTasks, longPollingTimeout, lockDuration,
  payloadFilter?}``: lock up to ``maxTasks`` fetchable tasks of the topic(s) for ``lockDuration`` ms; when there is
  none, wait up to ``longPollingTimeout`` ms for one, then answer ``[]``. A client that hangs up ends the wait.
- ``PUT /external_tasks/{id}/extend_lock`` ``{workerId, additionalDuration}``,
  ``PUT /external_tasks/{id}/finish`` ``{workerId, result}``, ``PUT /external_tasks/{id}/error``
  ``{workerId, error: {errorCode, errorMessage?, errorDetails?}}``: 204.

Every request needs a valid token; every one but ``deployed_topics`` changes state and needs ``engine_write``
(403). Unknown id: 404. A task that is no longer pending (finished, failed, expired, its instance ended): 409, the
code the official TypeScript worker takes for "already finished, nothing left to do". A task that another worker
holds (or that this worker never locked): 423 LockedError. A bad body: 400 naming the field.

Locks: a lock ends at ``lockExpirationTime``; from then on the task can be fetched again, by any worker. Until some
worker does, its last holder may still extend, finish or fail it. When a lock expires the engine publishes
``external_task_unlocked`` (a single-try task, ``camunda:property name="engine.isSingleTry" value="true"``,
instead becomes ``expired``, publishes ``external_task_expired`` and fails its flow node like a worker's error).

Consistency: an external task row is written in the same transaction as the instance state that created or ended
it (:meth:`ExternalTasks.apply_snapshot` runs inside the core's snapshot application), and every event is published
only after that transaction is committed. Locks are rows too, so a restarted engine keeps them, and re-arms the
expiry timer when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import js
from .bpmn import InstanceSnapshot, ProcessRunner
from .bpmn.external import external_task_model
from .errors import EngineHttpError
from .events import EventBus
from .identity import Identity
from .store import Store

if TYPE_CHECKING:
    from .app import EngineApp
    from .core import EngineCore

__all__ = ["ExternalTasks", "FetchRequest", "external_task_data_json", "external_task_json", "external_task_routes"]

log = logging.getLogger("embedded_engine")

SERVICE_TASK = "bpmn:ServiceTask"
PENDING, FINISHED, EXPIRED = "pending", "finished", "expired"
_MAX_TOPICS = 1000  # topics of one fetch (each is an SQL parameter)
_MAX_LOCK_MS = 10 * 365 * 24 * 3600 * 1000  # ten years: anything longer is a mistake, not a lock

Event = tuple[str, dict[str, Any], str | None]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    """Epoch milliseconds as JavaScript's ``Date.toISOString()`` writes them."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def external_task_json(row: dict[str, Any]) -> dict[str, Any]:
    """An external task (a store row) in the SDK's ``ExternalTask`` shape; optional fields without a value left out."""
    item: dict[str, Any] = {
        "id": row["external_task_id"],
        "workerId": row["worker_id"],
        "topic": row["topic"],
        "isSingleTry": row["is_single_try"],
        "flowNodeInstanceId": row["flow_node_instance_id"],
        "correlationId": row["correlation_id"],
        "processDefinitionId": row["process_definition_id"],
        "processModelId": row["process_model_id"],
        "processInstanceId": row["process_instance_id"],
        "ownerId": row["owner_id"],
        "payload": row["payload"],
        "lockExpirationTime": row["lock_expiration_time"],
        "state": row["state"],
        "createdAt": row["created_at"],
    }
    optional = {"finishedAt": row["finished_at"], "result": row["result"], "error": row["error"]}
    item.update({key: value for key, value in optional.items() if value is not None})
    return item


def external_task_data_json(row: dict[str, Any]) -> dict[str, Any]:
    """The SDK's ``ExternalTaskData`` of a service task instance; optional fields without a value left out."""
    item: dict[str, Any] = {
        "externalTaskId": row["external_task_id"],
        "topic": row["topic"],
        "state": row["state"],
        "isSingleTry": row["is_single_try"],
        "payload": row["payload"],
    }
    optional = {
        "workerId": row["worker_id"],
        "lockExpirationTime": row["lock_expiration_time"],
        "result": row["result"],
        "error": row["error"],
        "finishedAt": row["finished_at"],
    }
    item.update({key: value for key, value in optional.items() if value is not None})
    return item


@dataclass(frozen=True)
class FetchRequest:
    """A validated ``FetchAndLockRequestPayload``."""

    worker_id: str
    topics: tuple[str, ...]
    max_tasks: int
    long_polling_timeout_ms: float
    lock_duration_ms: int
    payload_filter: PayloadFilter | None = None


@dataclass(frozen=True)
class PayloadFilter:
    """A worker's ``payloadFilter``: a JavaScript regular expression, searched for in each payload's JSON.

    It runs in the JavaScript sandbox, not in Python's ``re``: the syntax is JavaScript's (what the official client
    sends), and a pattern that backtracks forever (``/(a+)+$/``) ends at the sandbox's time limit instead of holding
    the engine's event loop.
    """

    source: str
    flags: str

    _MATCH = (
        "(() => { const r = new RegExp(token.source, token.flags); return token.payloads.map((p) => r.test(p)); })()"
    )

    def matches(self, payloads: Sequence[str]) -> list[bool]:
        """Which of ``payloads`` (JSON texts) the pattern is found in; 400 for a pattern JavaScript refuses."""
        if not payloads:
            return []
        try:
            found = js.evaluate_expression(
                self._MATCH, {"source": self.source, "flags": self.flags, "payloads": list(payloads)}
            )
        except js.JsEvaluationError as exc:
            raise EngineHttpError(400, f"'payloadFilter' cannot be used: {exc.message}") from exc
        return [bool(item) for item in found] if isinstance(found, list) else [False] * len(payloads)


@dataclass(eq=False)
class _Fetcher:
    topics: frozenset[str]
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class ExternalTasks:
    """The external tasks of one engine: created and ended with their flow nodes, locked and finished by workers."""

    def __init__(self, core: EngineCore, store: Store, bus: EventBus) -> None:
        self._core = core
        self._store = store
        self._bus = bus
        self._fetchers: set[_Fetcher] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due_ms: int | None = None
        self._closed = False

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Arm the lock expiry timer for the locks in the store (call once the event loop runs, e.g. at startup)."""
        self._arm()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fetcher in self._fetchers:
            fetcher.wake.set()

    # -- reads -------------------------------------------------------------------------------------------------

    def deployed_topics(self) -> list[str]:
        """The topics of the external tasks of every deployed process definition (each once, sorted)."""
        topics: set[str] = set()
        for row in self._store.current_definitions():
            parsed = self._core._parsed_by_hash(str(row["hash"]), str(row["xml"]))
            topics.update(external_task_model(parsed).topics)
        return sorted(topics)

    def add_external_task_data(self, items: list[dict[str, Any]]) -> None:
        """Give the service tasks among these flow node instances (JSON) their ``externalTaskData``.

        The SDK's ``ServiceTaskInstance.externalTaskData`` (the official TypeScript client's ``mapServiceTask`` reads
        it): ``externalTaskId, topic, state, isSingleTry, payload`` and, once set, ``workerId, lockExpirationTime,
        result, error, finishedAt``.
        """
        ids = [str(item["flowNodeInstanceId"]) for item in items if item.get("flowNodeType") == SERVICE_TASK]
        if not ids:
            return
        rows = self._store.external_tasks_of_flow_nodes(ids)
        for item in items:
            row = rows.get(str(item["flowNodeInstanceId"]))
            if row is not None and item.get("flowNodeType") == SERVICE_TASK:
                item["externalTaskData"] = external_task_data_json(row)

    # -- the instance side: called inside the core's snapshot transaction ---------------------------------------

    def apply_snapshot(
        self, instance: Mapping[str, Any], runner: ProcessRunner, snapshot: InstanceSnapshot, stamp: str
    ) -> list[Event]:
        """Create the external tasks of service tasks that now wait for a worker; end those whose node moved on.

        Runs inside the transaction that writes the instance's new state; returns the events to publish after it.
        """
        service_nodes = [node for node in snapshot.flow_node_instances if node.flow_node_type == SERVICE_TASK]
        if not service_nodes:
            return []
        process_instance_id = str(instance["process_instance_id"])
        existing = self._store.external_tasks_of_instance(process_instance_id)
        events: list[Event] = []
        created_topics: set[str] = set()
        for node in service_nodes:
            row = existing.get(node.flow_node_instance_id)
            if node.state == "suspended":
                if row is not None:
                    continue
                found = runner.external_task(node.flow_node_instance_id)
                if found is None:
                    continue  # not an external task (or the instance ended)
                definition, payload = found
                row = {
                    "external_task_id": str(uuid.uuid4()),
                    "flow_node_instance_id": node.flow_node_instance_id,
                    "flow_node_id": node.flow_node_id,
                    "topic": definition.topic,
                    "is_single_try": definition.is_single_try,
                    "process_instance_id": process_instance_id,
                    "process_model_id": instance["process_model_id"],
                    "process_definition_id": instance["definition_id"],
                    "correlation_id": instance["correlation_id"],
                    "owner_id": instance["owner_id"],
                    "payload": payload,
                    "worker_id": None,
                    "locked": 0,
                    "lock_expires_ms": None,
                    "lock_expiration_time": None,
                    "state": PENDING,
                    "created_at": stamp,
                }
                self._store.insert_external_task(row)
                created_topics.add(definition.topic)
                events.append(
                    ("external_task_created", self._message(row, node.start_token, node.flow_node_name), None)
                )
            elif row is not None and row["state"] == PENDING:
                # The node moved on without a worker's finish or error: the instance was terminated or failed.
                error = {
                    "message": (snapshot.error or {}).get("message", "The process instance failed.")
                    if snapshot.state == "error"
                    else f"The flow node instance is {node.state}; the process instance is {snapshot.state}.",
                    "processInstanceState": snapshot.state,
                }
                self._store.update_external_task(
                    row["external_task_id"], state=FINISHED, finished_at=stamp, error=error, locked=0
                )
        if created_topics:
            self._store.after_commit(lambda: self._wake(created_topics))
        return events

    # -- the worker side ---------------------------------------------------------------------------------------

    async def fetch_and_lock(self, request: FetchRequest, identity: Identity, *, max_wait_seconds: float) -> list[Any]:
        """Lock up to ``max_tasks`` tasks for the worker, waiting for some up to the long polling timeout."""
        self._core._require_write(identity)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(request.long_polling_timeout_ms / 1000, max_wait_seconds)
        while not self._closed:
            locked = self._lock_now(request)
            if locked:
                await self._store.durable()
                return [external_task_json(row) for row in locked]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            fetcher = _Fetcher(frozenset(request.topics))
            self._fetchers.add(fetcher)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await fetcher.wake.wait()
            finally:
                self._fetchers.discard(fetcher)
        return []

    def _lock_now(self, request: FetchRequest) -> list[dict[str, Any]]:
        now = _now_ms()
        rows = self._store.fetchable_external_tasks(request.topics, now)
        if request.payload_filter is None:
            chosen = list(islice(rows, request.max_tasks))
        else:  # one sandbox call per chunk of candidates
            chosen = []
            while len(chosen) < request.max_tasks and (chunk := list(islice(rows, 200))):
                matches = request.payload_filter.matches([_js_json(row["payload"]) for row in chunk])
                chosen += [row for row, match in zip(chunk, matches, strict=True) if match]
            chosen = chosen[: request.max_tasks]
        if not chosen:
            return []
        expires = now + request.lock_duration_ms
        events: list[Event] = []
        with self._store.transaction():
            for row in chosen:
                row.update(
                    worker_id=request.worker_id,
                    locked=True,
                    lock_expires_ms=expires,
                    lock_expiration_time=_iso(expires),
                )
                self._store.update_external_task(
                    row["external_task_id"],
                    worker_id=request.worker_id,
                    locked=1,
                    lock_expires_ms=expires,
                    lock_expiration_time=_iso(expires),
                )
                events.append(("external_task_locked", self._locked_message(row), None))
        self._after_commit(events, rearm=True)
        return chosen

    async def extend_lock(self, external_task_id: str, worker_id: str, additional_ms: int, identity: Identity) -> None:
        """Push the lock's end ``additional_ms`` further (from now, if it has already passed)."""
        self._core._require_write(identity)
        row = self._held(external_task_id, worker_id, "extend the lock of")
        now = _now_ms()
        expires = max(int(row["lock_expires_ms"] or now), now) + additional_ms
        relocked = not row["locked"]
        self._store.update_external_task(
            external_task_id, locked=1, lock_expires_ms=expires, lock_expiration_time=_iso(expires)
        )
        events: list[Event] = []
        if relocked:  # its expiry had already been announced: it is locked again
            row.update(locked=True, lock_expires_ms=expires, lock_expiration_time=_iso(expires))
            events.append(("external_task_locked", self._locked_message(row), None))
        self._after_commit(events, rearm=True)
        await self._store.durable()

    async def finish(self, external_task_id: str, worker_id: str, result: Any, identity: Identity) -> None:
        """The worker's result: it becomes the service task's result (``token.current``), and the instance runs on."""
        self._core._require_write(identity)
        row = self._held(external_task_id, worker_id, "finish")
        instance = self._instance_of(row)
        stamp = _iso(_now_ms())
        fni = str(row["flow_node_instance_id"])
        with self._store.transaction():
            self._store.update_external_task(
                external_task_id, state=FINISHED, finished_at=stamp, result=result, locked=0
            )
            self._core._advance(instance, lambda runner: runner.finish_external_task(fni, result))
        self._after_commit([], rearm=True)
        await self._store.durable()

    async def fail(
        self,
        external_task_id: str,
        worker_id: str,
        error_code: str,
        message: str | None,
        details: Any,
        identity: Identity,
    ) -> None:
        """The worker's error: a matching error boundary event takes the token on, otherwise the instance fails."""
        self._core._require_write(identity)
        row = self._held(external_task_id, worker_id, "report an error for")
        self._throw(row, error_code, message, details, state=FINISHED)
        await self._store.durable()

    def _throw(self, row: dict[str, Any], error_code: str, message: str | None, details: Any, *, state: str) -> None:
        instance = self._instance_of(row)
        stamp = _iso(_now_ms())
        error: dict[str, Any] = {"errorCode": error_code}
        if message is not None:
            error["errorMessage"] = message
        if details is not None:
            error["errorDetails"] = details
        fni = str(row["flow_node_instance_id"])
        with self._store.transaction():
            self._store.update_external_task(
                row["external_task_id"], state=state, finished_at=stamp, error=error, locked=0
            )
            self._core._advance(instance, lambda runner: runner.error_external_task(fni, error_code, message, details))
        self._after_commit([], rearm=True)

    # -- rules -------------------------------------------------------------------------------------------------

    def _held(self, external_task_id: str, worker_id: str, action: str) -> dict[str, Any]:
        """The pending task ``worker_id`` may act on: 404 unknown, 409 no longer pending, 423 someone else's."""
        row = self._store.get_external_task(external_task_id)
        if row is None:
            raise EngineHttpError(404, f"External task '{external_task_id}' not found.")
        if row["state"] != PENDING:
            raise EngineHttpError(
                409,
                f"External task '{external_task_id}' has already been {row['state']}; there is nothing to {action}.",
                additional_information={"state": row["state"]},
            )
        holder = row["worker_id"]
        if holder != worker_id:
            who = "is not locked by any worker" if holder is None else "is locked by another worker"
            raise EngineHttpError(
                423,
                f"External task '{external_task_id}' {who}; worker '{worker_id}' cannot {action} it.",
                additional_information={"lockExpirationTime": row["lock_expiration_time"]}
                if row["lock_expiration_time"]
                else None,
            )
        return row

    def _instance_of(self, row: dict[str, Any]) -> dict[str, Any]:
        instance = self._store.get_instance(str(row["process_instance_id"]))
        if instance is None:
            raise EngineHttpError(500, f"The process instance of external task '{row['external_task_id']}' is missing.")
        return instance

    # -- lock expiry -------------------------------------------------------------------------------------------

    def _arm(self, *, min_delay: float = 0.0) -> None:
        """(Re)schedule the expiry timer for the earliest lock in the store."""
        if self._closed:
            return
        due = self._store.next_external_task_lock_expiry()
        if due == self._timer_due_ms and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_due_ms = due
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script seeding the store): start() arms the timer once one runs
            self._timer_due_ms = None
            return
        delay = max(min_delay, (due - _now_ms()) / 1000 + 0.001)
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due_ms = None
        try:
            self._expire_locks()
        except Exception:
            log.exception("expiring external task locks failed; trying again in a second")
            self._arm(min_delay=1.0)
            return
        self._arm()

    def _expire_locks(self) -> None:
        for row in self._store.expired_external_task_locks(_now_ms()):
            if row["is_single_try"]:
                try:
                    self._throw(
                        row,
                        "ExternalTaskExpired",
                        f"The lock of single-try external task '{row['external_task_id']}' expired.",
                        None,
                        state=EXPIRED,
                    )
                except Exception:
                    # Its node no longer waits (or the instance cannot be loaded): end the task all the same, so
                    # that the timer does not find it again.
                    log.exception("failing expired external task %s failed", row["external_task_id"])
                    self._store.update_external_task(
                        row["external_task_id"], state=EXPIRED, finished_at=_iso(_now_ms()), locked=0
                    )
                self._after_commit([("external_task_expired", self._message(row, None), None)], rearm=False)
                continue
            self._store.update_external_task(row["external_task_id"], locked=0)
            row["locked"] = False
            topic = str(row["topic"])
            self._after_commit([("external_task_unlocked", self._message(row, None), None)], rearm=False, wake={topic})

    # -- events ------------------------------------------------------------------------------------------------

    def _after_commit(self, events: Sequence[Event], *, rearm: bool, wake: set[str] | None = None) -> None:
        def publish() -> None:
            if wake:
                self._wake(wake)
            for name, message, lane in events:
                try:
                    self._bus.publish(name, message, lane=lane)
                except Exception:  # an event consumer must never fail a committed write
                    log.exception("publishing %s failed", name)
            if rearm:
                self._arm()

        self._store.after_commit(publish)

    def _wake(self, topics: set[str] | frozenset[str]) -> None:
        for fetcher in list(self._fetchers):
            if fetcher.topics & topics:
                fetcher.wake.set()

    def _message(self, row: dict[str, Any], current_token: Any, flow_node_name: str | None = None) -> dict[str, Any]:
        """The ExternalTaskCreatedMessage (EventMessage + externalTaskId, topic, isSingleTry) about a task."""
        node = self._store.get_flow_node(str(row["flow_node_instance_id"])) if current_token is None else None
        token = current_token if current_token is not None else (node or {}).get("start_token")
        name = flow_node_name if flow_node_name is not None else (node or {}).get("flow_node_name")
        message: dict[str, Any] = {
            "correlationId": row["correlation_id"],
            "processDefinitionId": row["process_definition_id"],
            "processModelId": row["process_model_id"],
            "processInstanceId": row["process_instance_id"],
            "ownerId": row["owner_id"],
            "currentToken": token if token is not None else {},
            "flowNodeId": row["flow_node_id"],
            "flowNodeType": SERVICE_TASK,
            "flowNodeInstanceId": row["flow_node_instance_id"],
            "externalTaskId": row["external_task_id"],
            "topic": row["topic"],
            "isSingleTry": bool(row["is_single_try"]),
        }
        if name:
            message["flowNodeName"] = name
        return message

    def _locked_message(self, row: dict[str, Any]) -> dict[str, Any]:
        message = self._message(row, None)
        message["workerId"] = row["worker_id"]
        message["lockExpirationTime"] = row["lock_expiration_time"]
        return message


def _js_json(value: Any) -> str:
    """``JSON.stringify(value)``: what a payload filter is matched against."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------------------------------------
# HTTP


def _body_object(body: Any, shape: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise EngineHttpError(400, f"The body must be a JSON object {shape}.")
    return body


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise EngineHttpError(400, f"'{name}' must be a non-empty string.")
    return value


def _number(body: dict[str, Any], name: str, *, default: float | None, minimum: float) -> float:
    value = body.get(name, default)
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < minimum:
        raise EngineHttpError(400, f"'{name}' must be a number of at least {minimum:g}, not {json.dumps(value)}.")
    return float(value)


def _payload_filter(raw: Any) -> PayloadFilter | None:
    """``payloadFilter``: a JavaScript RegExp as ``RegExp.prototype.toString()`` writes it (``/pattern/flags``, what
    the official TypeScript client sends), or a bare pattern; it is searched for in the payload's JSON."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise EngineHttpError(400, '\'payloadFilter\' must be a string: a regular expression like /"region":"north"/i.')
    literal = re.fullmatch(r"/(.*)/([a-z]*)", raw, flags=re.DOTALL)
    if literal is None:
        return _checked(PayloadFilter(raw, ""))
    # g and y make RegExp.test() stateful between payloads: a search needs neither
    return _checked(PayloadFilter(literal.group(1), "".join(f for f in literal.group(2) if f not in "gy")))


def _checked(payload_filter: PayloadFilter) -> PayloadFilter:
    payload_filter.matches(["{}"])  # a pattern JavaScript refuses is a 400 before anything waits
    return payload_filter


def parse_fetch_request(body: Any) -> FetchRequest:
    data = _body_object(body, "(FetchAndLockRequestPayload)")
    worker_id = _string(data, "workerId")
    topic_name = data.get("topicName")
    topics = [topic_name] if isinstance(topic_name, str) else topic_name
    if not isinstance(topics, list) or not topics or not all(isinstance(topic, str) and topic for topic in topics):
        raise EngineHttpError(400, "'topicName' must be a topic (a non-empty string) or a non-empty list of topics.")
    if len(set(topics)) > _MAX_TOPICS:
        raise EngineHttpError(400, f"'topicName' lists more than {_MAX_TOPICS} topics.")
    max_tasks = _number(data, "maxTasks", default=10, minimum=1)
    if max_tasks != int(max_tasks):
        raise EngineHttpError(400, f"'maxTasks' must be a whole number, not {max_tasks:g}.")
    long_polling = _number(data, "longPollingTimeout", default=0, minimum=0)
    lock_duration = _number(data, "lockDuration", default=30000, minimum=1)
    return FetchRequest(
        worker_id=worker_id,
        topics=tuple(dict.fromkeys(topics)),
        max_tasks=min(int(max_tasks), 1000),
        long_polling_timeout_ms=long_polling,
        lock_duration_ms=int(min(lock_duration, _MAX_LOCK_MS)),
        payload_filter=_payload_filter(data.get("payloadFilter")),
    )


async def _unless_disconnected(request: Request, work: Awaitable[list[Any]]) -> list[Any] | None:
    """Await ``work``; give up (None) as soon as the client hangs up."""
    work_task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch_task = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch_task.cancel()
        if not work_task.done():
            work_task.cancel()
        await asyncio.gather(work_task, watch_task, return_exceptions=True)
    if work_task.cancelled():
        return None
    return work_task.result()


def external_task_routes(engine: EngineApp) -> list[BaseRoute]:
    """The external task routes, to be mounted under ``/atlas_engine/api/v1``."""
    tasks = engine.core.external_tasks

    async def deployed_topics(request: Request) -> Response:
        engine.identity(request)
        return JSONResponse(tasks.deployed_topics())

    async def fetch_and_lock(request: Request) -> Response:
        identity = engine.identity(request)
        fetch = parse_fetch_request(await engine.read_json(request))
        locked = await _unless_disconnected(
            request,
            tasks.fetch_and_lock(fetch, identity, max_wait_seconds=engine.settings.long_polling_max_wait),
        )
        return JSONResponse(locked if locked is not None else [])

    async def extend_lock(request: Request) -> Response:
        identity = engine.identity(request)
        data = _body_object(await engine.read_json(request), '{"workerId": "…", "additionalDuration": <ms>}')
        worker_id = _string(data, "workerId")
        additional = _number(data, "additionalDuration", default=None, minimum=0)
        await tasks.extend_lock(
            request.path_params["external_task_id"], worker_id, int(min(additional, _MAX_LOCK_MS)), identity
        )
        return Response(status_code=204)

    async def finish(request: Request) -> Response:
        identity = engine.identity(request)
        data = _body_object(await engine.read_json(request), '{"workerId": "…", "result": {…}}')
        worker_id = _string(data, "workerId")
        if "result" not in data:
            raise EngineHttpError(400, '\'result\' is missing: the body must be {"workerId": "…", "result": {…}}.')
        await tasks.finish(request.path_params["external_task_id"], worker_id, data["result"], identity)
        return Response(status_code=204)

    async def error(request: Request) -> Response:
        identity = engine.identity(request)
        data = _body_object(
            await engine.read_json(request), '{"workerId": "…", "error": {"errorCode": "…", "errorMessage": "…"}}'
        )
        worker_id = _string(data, "workerId")
        # processcube-client 6.1.2 sends a BPMN error as "bpmnError" (its BpmnErrorRequest); the SDK names it "error"
        reported = data.get("error", data.get("bpmnError"))
        if not isinstance(reported, dict):
            raise EngineHttpError(400, '\'error\' must be an object {"errorCode": "…", "errorMessage": "…"}.')
        code = reported.get("errorCode", reported.get("code"))
        if isinstance(code, bool) or not isinstance(code, str | int | float) or code == "":
            raise EngineHttpError(400, "'error.errorCode' must be a non-empty string.")
        message = reported.get("errorMessage", reported.get("message"))
        if message is not None and not isinstance(message, str):
            message = json.dumps(message)
        details = reported.get("errorDetails", reported.get("additionalInformation"))
        await tasks.fail(request.path_params["external_task_id"], worker_id, str(code), message, details, identity)
        return Response(status_code=204)

    return [
        Route("/external_tasks/deployed_topics", deployed_topics, methods=["GET"]),
        Route("/external_tasks/fetch_and_lock", fetch_and_lock, methods=["POST"]),
        Route("/external_tasks/{external_task_id}/extend_lock", extend_lock, methods=["PUT"]),
        Route("/external_tasks/{external_task_id}/finish", finish, methods=["PUT"]),
        Route("/external_tasks/{external_task_id}/error", error, methods=["PUT"]),
    ]
