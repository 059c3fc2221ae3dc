"""The engine's use cases: deploy, start, query, reserve, cancel, finish, terminate.

HTTP lives in app.py, SQL in store.py, BPMN execution in the bpmn package, the JSON shapes in wire.py; this module
ties them together and owns the rules of the engine's contract (``docs/engine.md``):

- Who may see a task: a user task in a lane exists only for identities that may see the lane (lanes are claims,
  see :mod:`embedded_engine.identity`): queries leave it out, actions on it answer 404.
- Who may act: every change needs the ``engine_write`` scope (403). A reserved task cannot be reserved for
  another user (409) and only its owner may finish it (409); anyone who may act on it may cancel the
  reservation.
- Which error answers which mistake: an unknown id, or a user task that no longer waits, is 404; a request that
  contradicts itself or the model (a start event or end event the model does not have) is 400; a conflict with
  what is deployed or has happened (a definitions id deployed with other content, an instance that already
  ended) is 409. Errors leave in the real engine's error shape (:mod:`embedded_engine.errors`).

Every change of an instance runs synchronously on the event loop thread: load the workflow, advance it, write the
result in one SQLite transaction, then publish the events. There is no ``await`` between load and commit, so two
requests can never interleave on one instance, and a failure before the commit leaves nothing behind (the cached
workflow object is dropped, the next request reloads the last committed state).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from cachetools import LRUCache

from .bpmn import (
    DeployError,
    FlowNodeInstanceSnapshot,
    FlowNodeState,
    InstanceSnapshot,
    InstanceState,
    OutboundEvent,
    ParsedDefinitions,
    ProcessModelDef,
    ProcessRunner,
    WaitKind,
    parse_definitions,
)
from .errors import EngineHttpError
from .events import EventBus
from .external_tasks import ExternalTasks
from .identity import DUMMY_USER_ID, Identity
from .store import FlowNodeQuery, LaneScope, Store
from .timers import TimerClock
from .wire import (
    USER_TASK,
    flow_node_json,
    process_event,
    process_instance_json,
    process_model_json,
    start_answer,
    task_event,
)

log = logging.getLogger("embedded_engine")

FLOW_NODE_STATES: tuple[str, ...] = get_args(FlowNodeState)
PROCESS_STATES: tuple[str, ...] = get_args(InstanceState)
ENDED_STATES = ("finished", "error", "terminated")
MANUAL_TASK = "bpmn:ManualTask"
UNTYPED_TASK = "bpmn:Task"
# Flow node types a person finishes through the API, with the events the engine publishes about them.
_WAITING_EVENTS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    USER_TASK: (("user_task_waiting",), ("user_task_finished",)),
    MANUAL_TASK: (("manual_task_waiting",), ("manual_task_finished",)),
    # the official clients still offer the old "empty activity" names of untyped tasks: both are published
    UNTYPED_TASK: (
        ("untyped_task_waiting", "empty_activity_waiting"),
        ("untyped_task_finished", "empty_activity_finished"),
    ),
    "bpmn:IntermediateCatchEvent": (("intermediate_catch_event_reached",), ("intermediate_catch_event_finished",)),
    "bpmn:ReceiveTask": (("intermediate_catch_event_reached",), ("intermediate_catch_event_finished",)),
    "bpmn:BoundaryEvent": (("boundary_event_waiting",), ("boundary_event_triggered",)),
}
_FINISHED_EVENTS: Mapping[str, tuple[str, ...]] = {
    "bpmn:StartEvent": ("start_event_finished",),
    "bpmn:EndEvent": ("end_event_finished",),
}


def now_iso() -> str:
    """Timestamps as JavaScript's ``Date.toISOString()`` writes them: the real engine is a Node.js program."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Waiter:
    end_event_id: str | None
    future: asyncio.Future[dict[str, Any]] = field(repr=False)


@dataclass(frozen=True)
class _DeployedModel:
    definition_id: str
    digest: str
    model: ProcessModelDef

    def to_json(self) -> dict[str, Any]:
        return process_model_json(self.definition_id, self.digest, self.model)


class EngineCore:
    """The engine's use cases, over one store and one event bus. Calls that depend on who asks take an Identity."""

    def __init__(self, store: Store, bus: EventBus, *, workflow_cache_size: int = 512) -> None:
        self._store = store
        self._bus = bus
        self._parsed: dict[str, ParsedDefinitions] = {}
        self._models: dict[str, _DeployedModel] = {}
        self._known_lanes: set[str] = set()
        self._runners: LRUCache[str, ProcessRunner] = LRUCache(maxsize=workflow_cache_size)
        self._waiters: dict[str, list[_Waiter]] = {}
        self.external_tasks = ExternalTasks(self, store, bus)  # the external task API (external_tasks.py)
        self._clock = TimerClock(self.fire_due_timers)
        self._deliveries: set[asyncio.Task[None]] = set()
        self._load_definitions()
        # a failed group commit leaves workflows in memory that the store does not have: forget them all
        store.on_commit_failure(self._runners.clear)

    def store_meta(self, key: str) -> str | None:
        return self._store.get_meta(key)

    def set_store_meta(self, key: str, value: str) -> None:
        self._store.set_meta(key, value)

    # -- definitions and models ------------------------------------------------------------------------------

    def _load_definitions(self) -> None:
        for row in self._store.current_definitions():
            parsed = self._parsed_by_hash(str(row["hash"]), str(row["xml"]))
            self._index_models(parsed, str(row["hash"]))

    def _parsed_by_hash(self, digest: str, xml: str | None = None) -> ParsedDefinitions:
        parsed = self._parsed.get(digest)
        if parsed is None:
            text = xml if xml is not None else self._store.definition_xml(digest)
            if text is None:
                raise EngineHttpError(500, f"The process definition version {digest} is missing from the store.")
            parsed = parse_definitions(text)
            self._parsed[digest] = parsed
            for model in parsed.process_models:
                self._known_lanes.update(node.lane for node in model.flow_nodes if node.lane)
        return parsed

    def _index_models(self, parsed: ParsedDefinitions, digest: str) -> None:
        for model in parsed.process_models:
            self._models[model.process_model_id] = _DeployedModel(parsed.definitions_id, digest, model)

    async def deploy(self, xmls: Sequence[str], *, overwrite: bool, identity: Identity) -> None:
        """Deploy one or several definitions files; all are validated before any is stored."""
        self._require_write(identity)
        parsed_files: list[tuple[ParsedDefinitions, str, str]] = []
        for index, xml in enumerate(xmls):
            try:
                parsed = parse_definitions(xml)
            except DeployError as exc:
                info: dict[str, Any] = {"line": exc.line} if exc.line is not None else {}
                if len(xmls) > 1:
                    info["index"] = index
                raise EngineHttpError(400, exc.message, additional_information=info or None) from exc
            digest = hashlib.sha256(xml.encode()).hexdigest()
            parsed_files.append((parsed, xml, digest))
        current = {str(row["definition_id"]): str(row["hash"]) for row in self._store.current_definitions()}
        for parsed, _xml, digest in parsed_files:
            existing = current.get(parsed.definitions_id)
            if existing is not None and existing != digest and not overwrite:
                raise EngineHttpError(
                    409,
                    f"The process definition '{parsed.definitions_id}' is already deployed."
                    " Set overwriteExisting to replace it.",
                )
            for model in parsed.process_models:
                other = self._models.get(model.process_model_id)
                if other is not None and other.definition_id != parsed.definitions_id:
                    raise EngineHttpError(
                        409,
                        f"The process model '{model.process_model_id}' is already deployed as part of the"
                        f" process definition '{other.definition_id}'.",
                    )
        stamp = now_iso()
        with self._store.transaction():
            for parsed, xml, digest in parsed_files:
                if current.get(parsed.definitions_id) != digest:
                    self._store.save_definition(parsed.definitions_id, xml, digest, stamp, identity.user_id)
        await self._store.durable()
        for parsed, _xml, digest in parsed_files:
            self._parsed[digest] = parsed
            for model in parsed.process_models:
                self._known_lanes.update(node.lane for node in model.flow_nodes if node.lane)
            for model_id in [
                key for key, value in self._models.items() if value.definition_id == parsed.definitions_id
            ]:
                del self._models[model_id]
            self._index_models(parsed, digest)
            self._publish(
                "process_deployed",
                {
                    "processDefinitionId": parsed.definitions_id,
                    "processModelIds": [m.process_model_id for m in parsed.process_models],
                },
                None,
            )

    def process_models(self) -> list[dict[str, Any]]:
        return [deployed.to_json() for deployed in sorted(self._models.values(), key=_model_sort_key)]

    def process_model(self, process_model_id: str) -> dict[str, Any]:
        return self._deployed(process_model_id).to_json()

    def process_definitions(self) -> list[dict[str, Any]]:
        result = []
        for row in self._store.current_definitions():
            models = [m.to_json() for m in self._models.values() if m.definition_id == row["definition_id"]]
            result.append(
                {
                    "processDefinitionId": row["definition_id"],
                    "xml": row["xml"],
                    "hash": row["hash"],
                    "processModels": models,
                    "deployedAt": row["deployed_at"],
                    "deployedByUserId": row["deployed_by"],
                }
            )
        return result

    def process_definition(self, definition_id: str) -> dict[str, Any]:
        for definition in self.process_definitions():
            if definition["processDefinitionId"] == definition_id:
                return definition
        raise EngineHttpError(404, f"Process definition '{definition_id}' not found.")

    def definition_of_model(self, process_model_id: str) -> dict[str, Any]:
        return self.process_definition(self._deployed(process_model_id).definition_id)

    def model_of_instance(self, process_instance_id: str) -> dict[str, Any]:
        """The process model an instance runs on: the version it was started with, deployed or not any more."""
        instance = self._instance(process_instance_id)
        parsed = self._parsed_by_hash(str(instance["definition_hash"]))
        model = parsed.process_model(str(instance["process_model_id"]))
        return process_model_json(parsed.definitions_id, str(instance["definition_hash"]), model)

    def definition_of_instance(self, process_instance_id: str) -> dict[str, Any]:
        """The definitions file (the version) an instance was started with."""
        instance = self._instance(process_instance_id)
        digest = str(instance["definition_hash"])
        current = {row["hash"]: row for row in self._store.current_definitions()}.get(digest)
        parsed = self._parsed_by_hash(digest)
        return {
            "processDefinitionId": parsed.definitions_id,
            "xml": parsed.xml,
            "hash": digest,
            "processModels": [process_model_json(parsed.definitions_id, digest, m) for m in parsed.process_models],
            "deployedAt": current["deployed_at"] if current else None,
            "deployedByUserId": current["deployed_by"] if current else None,
        }

    def _instance(self, process_instance_id: str) -> dict[str, Any]:
        instance = self._store.get_instance(process_instance_id)
        if instance is None:
            raise EngineHttpError(404, f"Process instance '{process_instance_id}' not found.")
        return instance

    def _running_instance(self, process_instance_id: str) -> dict[str, Any]:
        """The instance, which has not ended: 404 if unknown, 409 if it has."""
        instance = self._instance(process_instance_id)
        if instance["state"] in ENDED_STATES:
            raise EngineHttpError(
                409,
                f"Process instance '{process_instance_id}' has already ended (state '{instance['state']}').",
            )
        return instance

    async def delete_definition(self, definition_id: str, *, delete_related: bool, identity: Identity) -> None:
        """Undeploy a definitions file. Its running instances go on with the version they started with, unless
        ``delete_related`` deletes them (and everything they left) as well."""
        self._require_write(identity)
        self.process_definition(definition_id)  # 404 when unknown
        removed = self._store.delete_definition(definition_id, with_instances=delete_related)
        await self._store.durable()
        for model_id in [key for key, value in self._models.items() if value.definition_id == definition_id]:
            del self._models[model_id]
        for process_instance_id in removed:
            self._runners.pop(process_instance_id, None)

    async def delete_model(self, process_model_id: str, *, delete_related: bool, identity: Identity) -> None:
        """Undeploy the definitions file that holds this process model."""
        definition_id = self._deployed(process_model_id).definition_id
        await self.delete_definition(definition_id, delete_related=delete_related, identity=identity)

    def _deployed(self, process_model_id: str) -> _DeployedModel:
        deployed = self._models.get(process_model_id)
        if deployed is None:
            raise EngineHttpError(404, f"Process model '{process_model_id}' not found.")
        return deployed

    # -- process instances -----------------------------------------------------------------------------------

    async def start(
        self,
        process_model_id: str,
        *,
        identity: Identity,
        initial_token: Any,
        start_event_id: str | None,
        correlation_id: str | None,
        return_on: int,
        end_event_id: str | None,
    ) -> dict[str, Any]:
        self._require_write(identity)
        deployed = self._deployed(process_model_id)
        if not deployed.model.is_executable:
            raise EngineHttpError(400, f"Process model '{process_model_id}' is not executable.")
        start_ids = [event.id for event in deployed.model.start_events]
        if start_event_id is not None and start_event_id not in start_ids:
            raise EngineHttpError(
                400,
                f"Process model '{process_model_id}' has no start event '{start_event_id}'"
                f" (start events: {', '.join(start_ids) or 'none'}).",
            )
        end_ids = [event.id for event in deployed.model.end_events]
        if return_on == 3 and end_event_id not in end_ids:
            raise EngineHttpError(
                400,
                f"returnOn 3 needs an endEventId of process model '{process_model_id}'"
                f" (end events: {', '.join(end_ids) or 'none'}).",
            )
        parsed = self._parsed_by_hash(deployed.digest)
        runner = ProcessRunner.start(
            parsed, process_model_id, initial_token=initial_token, start_event_id=start_event_id
        )
        process_instance_id = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        stamp = now_iso()
        snapshot = runner.snapshot()
        future: asyncio.Future[dict[str, Any]] | None = None
        if return_on in (2, 3):
            future = asyncio.get_running_loop().create_future()
            waiter = _Waiter(end_event_id if return_on == 3 else None, future)
            self._waiters.setdefault(process_instance_id, []).append(waiter)
        events: list[tuple[str, dict[str, Any], str | None]] = []
        try:
            with self._store.transaction():
                self._store.insert_instance(
                    {
                        "process_instance_id": process_instance_id,
                        "process_model_id": process_model_id,
                        "process_model_name": deployed.model.name,
                        "definition_id": deployed.definition_id,
                        "definition_hash": deployed.digest,
                        "correlation_id": correlation,
                        "owner_id": identity.user_id,
                        "started_by_root": int(identity.anonymous),
                        "state": "running",
                        "error": None,
                        "start_event_id": start_event_id or (start_ids[0] if start_ids else None),
                        "created_at": stamp,
                        "workflow": "",
                    }
                )
                instance = self._store.get_instance(process_instance_id)
                assert instance is not None
                started = {
                    **process_event(instance, snapshot),
                    "currentToken": initial_token,
                    "flowNodeId": instance["start_event_id"],
                }
                started.pop("error", None)
                events = [("process_started", started, None)]
                events += self._apply_snapshot(instance, runner, snapshot, stamp)
            self._runners[process_instance_id] = runner
            self._after_commit(events, process_instance_id, snapshot)
            await self._store.durable()
        except BaseException:
            self._waiters.pop(process_instance_id, None)
            raise
        if future is None:
            return {"processInstanceId": process_instance_id, "correlationId": correlation}
        return await future

    def _resolve_waiters(self, process_instance_id: str, snapshot: InstanceSnapshot) -> None:
        waiters = self._waiters.get(process_instance_id)
        if not waiters:
            return
        instance = self._store.get_instance(process_instance_id)
        assert instance is not None
        reached_end_events = {
            node.flow_node_id
            for node in snapshot.flow_node_instances
            if node.flow_node_type == "bpmn:EndEvent" and node.state == "finished"
        }
        remaining: list[_Waiter] = []
        for waiter in waiters:
            if waiter.future.done():
                continue
            if snapshot.state == "error":
                message = (snapshot.error or {}).get("message", "The process instance failed.")
                waiter.future.set_exception(
                    EngineHttpError(
                        500,
                        f"Process instance '{process_instance_id}' failed: {message}",
                        additional_information={
                            "processInstanceId": process_instance_id,
                            "error": snapshot.error,
                        },
                    )
                )
            elif snapshot.state == "terminated":
                waiter.future.set_exception(
                    EngineHttpError(410, f"Process instance '{process_instance_id}' was terminated.")
                )
            elif waiter.end_event_id is not None and waiter.end_event_id in reached_end_events:
                waiter.future.set_result(start_answer(instance, waiter.end_event_id, snapshot))
            elif snapshot.state == "finished":
                waiter.future.set_result(start_answer(instance, snapshot.end_event_id, snapshot))
            else:
                remaining.append(waiter)
        if remaining:
            self._waiters[process_instance_id] = remaining
        else:
            self._waiters.pop(process_instance_id, None)

    def query_instances(
        self,
        filters: Mapping[str, Sequence[str]],
        offset: int,
        limit: int,
        *,
        ranges: Mapping[str, str] | None = None,
        sort_column: str | None = None,
        sort_descending: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        rows, total = self._store.query_instances(
            filters, offset, limit, ranges=ranges, sort_column=sort_column, sort_descending=sort_descending
        )
        return [process_instance_json(row) for row in rows], total

    async def terminate(self, process_instance_id: str, identity: Identity) -> None:
        self._require_write(identity)
        instance = self._running_instance(process_instance_id)

        def act(runner: ProcessRunner) -> None:
            runner.terminate()

        self._advance(instance, act, terminated_by=identity.user_id)
        await self._store.durable()

    # -- user tasks ------------------------------------------------------------------------------------------

    def query_flow_nodes(self, query: FlowNodeQuery, identity: Identity) -> tuple[list[dict[str, Any]], int | None]:
        scope = LaneScope(identity.visible_lanes(self._known_lanes))
        rows, total = self._store.query_flow_nodes(
            FlowNodeQuery(
                filters=query.filters,
                offset=query.offset,
                limit=query.limit,
                sort_column=query.sort_column,
                sort_descending=query.sort_descending,
                include_count=query.include_count,
                scope=scope,
            )
        )
        items = [flow_node_json(row) for row in rows]
        self.external_tasks.add_external_task_data(items)  # service tasks: externalTaskData, as the real engine
        return items, total

    def _visible_user_task(self, flow_node_instance_id: str, identity: Identity) -> dict[str, Any]:
        return self._visible_waiting(flow_node_instance_id, identity, USER_TASK, "User task")

    def _visible_waiting(
        self, flow_node_instance_id: str, identity: Identity, flow_node_type: str, label: str
    ) -> dict[str, Any]:
        row = self._store.get_flow_node(flow_node_instance_id)
        if row is None or row["flow_node_type"] != flow_node_type or not identity.can_see_lane(row["flow_node_lane"]):
            raise EngineHttpError(404, f"{label} '{flow_node_instance_id}' not found.")
        if row["state"] != "suspended":
            raise EngineHttpError(
                404,
                f"{label} '{flow_node_instance_id}' is not waiting (state '{row['state']}').",
                additional_information={"state": row["state"]},
            )
        return row

    async def reserve(self, flow_node_instance_id: str, actual_owner_id: str, identity: Identity) -> None:
        self._require_write(identity)
        row = self._visible_user_task(flow_node_instance_id, identity)
        current = row["actual_owner_id"]
        if current is not None and current != actual_owner_id:
            raise EngineHttpError(
                409,
                f"User task '{flow_node_instance_id}' is already reserved for another user.",
                additional_information={"actualOwnerId": current},
            )
        if current == actual_owner_id:
            return
        self._store.update_flow_node(flow_node_instance_id, actual_owner_id=actual_owner_id, updated_at=now_iso())
        row["actual_owner_id"] = actual_owner_id
        message = task_event(row)
        self._store.after_commit(lambda: self._publish("user_task_reserved", message, row["flow_node_lane"]))
        await self._store.durable()

    async def cancel_reservation(self, flow_node_instance_id: str, identity: Identity) -> None:
        self._require_write(identity)
        row = self._visible_user_task(flow_node_instance_id, identity)
        # Anyone with write access who can see the task may cancel its reservation, not only its owner: the
        # seed's workflow "Reservierung aufheben" releases other users' reservations (a colleague away, a task
        # left reserved). Finishing stays the owner's (see finish).
        if row["actual_owner_id"] is None:
            return
        self._store.update_flow_node(flow_node_instance_id, actual_owner_id=None, updated_at=now_iso())
        row["actual_owner_id"] = None
        message = task_event(row)
        self._store.after_commit(
            lambda: self._publish("user_task_reservation_canceled", message, row["flow_node_lane"])
        )
        await self._store.durable()

    async def finish(self, flow_node_instance_id: str, result: dict[str, Any], identity: Identity) -> None:
        self._require_write(identity)
        row = self._visible_user_task(flow_node_instance_id, identity)
        owner = row["actual_owner_id"]
        if owner is not None and owner != identity.user_id:
            raise EngineHttpError(
                409,
                f"User task '{flow_node_instance_id}' is reserved for another user; it can only be finished by"
                " that user, or after the reservation is cancelled.",
                additional_information={"actualOwnerId": owner},
            )
        instance = self._store.get_instance(str(row["process_instance_id"]))
        if instance is None:
            raise EngineHttpError(500, f"The process instance of user task '{flow_node_instance_id}' is missing.")

        def act(runner: ProcessRunner) -> None:
            runner.finish_user_task(flow_node_instance_id, result)

        self._advance(
            instance,
            act,
            finished_task=(flow_node_instance_id, identity.user_id, result),
        )
        await self._store.durable()

    # -- manual and untyped tasks ----------------------------------------------------------------------------

    async def finish_manual_task(self, flow_node_instance_id: str, identity: Identity) -> None:
        """Finish a waiting manual task; its token passes on unchanged."""
        await self._finish_without_result(flow_node_instance_id, identity, MANUAL_TASK, "Manual task")

    async def finish_untyped_task(self, flow_node_instance_id: str, identity: Identity) -> None:
        """Finish a waiting untyped (empty) task, ``bpmn:task``; its token passes on unchanged."""
        await self._finish_without_result(flow_node_instance_id, identity, UNTYPED_TASK, "Untyped task")

    async def _finish_without_result(
        self, flow_node_instance_id: str, identity: Identity, flow_node_type: str, label: str
    ) -> None:
        self._require_write(identity)
        row = self._visible_waiting(flow_node_instance_id, identity, flow_node_type, label)
        instance = self._store.get_instance(str(row["process_instance_id"]))
        if instance is None:
            raise EngineHttpError(500, f"The process instance of {label.lower()} '{flow_node_instance_id}' is missing.")

        def act(runner: ProcessRunner) -> None:
            if flow_node_type == MANUAL_TASK:
                runner.finish_manual_task(flow_node_instance_id)
            else:
                runner.finish_untyped_task(flow_node_instance_id)

        self._advance(instance, act, finished_task=(flow_node_instance_id, identity.user_id, None))
        await self._store.durable()

    # -- messages, signals, timers ---------------------------------------------------------------------------

    async def trigger(
        self,
        kind: WaitKind,
        name: str,
        *,
        payload: Any,
        process_instance_id: str | None,
        identity: Identity,
        correlation_id: str | None = None,
    ) -> None:
        """Deliver a message or signal called ``name``: to the one instance asked for, else to every running
        instance that waits for it, and start an instance of every model with a start event for it (not when
        an instance is named). Messages are broadcast like signals, as ProcessCube's event aggregator does (our
        reading; BPMN would pick one receiver). Nobody waiting is no error: the event is gone, as on the real
        engine."""
        self._require_write(identity)
        if process_instance_id is not None:
            self._running_instance(process_instance_id)
        message = {"eventName": name, "eventType": kind, "processInstanceId": process_instance_id}
        self._store.after_commit(lambda: self._publish(f"{kind}_triggered", dict(message, currentToken=payload), None))
        targets = [process_instance_id] if process_instance_id else self._store.instances_waiting_for(kind, name)
        for target in targets:
            instance = self._store.get_instance(target)
            if instance is None or instance["state"] in ENDED_STATES:
                continue
            try:
                self._advance(instance, lambda runner: runner.catch(kind, name, payload))
            except Exception:  # one broken instance must not keep the event from the others
                log.exception("delivering the %s %r to process instance %s failed", kind, name, target)
        if process_instance_id is None:
            for process_model_id, start_event_id in self._start_triggers(kind, name):
                await self.start(
                    process_model_id,
                    identity=identity,
                    initial_token=payload if payload is not None else {},
                    start_event_id=start_event_id,
                    correlation_id=correlation_id,
                    return_on=1,
                    end_event_id=None,
                )
        await self._store.durable()

    def _start_triggers(self, kind: str, name: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for deployed in sorted(self._models.values(), key=_model_sort_key):
            compiled = self._parsed_by_hash(deployed.digest).compiled
            if compiled is None or not deployed.model.is_executable:
                continue
            found += [
                pair for pair in compiled.start_triggers(kind, name) if pair[0] == deployed.model.process_model_id
            ]
        return found

    async def trigger_timer(self, flow_node_instance_id: str, identity: Identity) -> None:
        """Fire a waiting timer now, whatever its due time."""
        self._require_write(identity)
        row = self._store.get_flow_node(flow_node_instance_id)
        if row is None or not identity.can_see_lane(row["flow_node_lane"]):
            raise EngineHttpError(404, f"Timer event '{flow_node_instance_id}' not found.")
        instance = self._store.get_instance(str(row["process_instance_id"]))
        if instance is None or instance["state"] in ENDED_STATES:
            raise EngineHttpError(404, f"Timer event '{flow_node_instance_id}' is not waiting.")
        self._advance(instance, lambda runner: runner.fire_timer(flow_node_instance_id))
        await self._store.durable()

    async def fire_due_timers(self) -> str | None:
        """Fire every timer that is due, in every instance; returns when the next one is due."""
        for process_instance_id in self._store.due_timers(now_iso()):
            instance = self._store.get_instance(process_instance_id)
            if instance is None or instance["state"] in ENDED_STATES:
                continue
            try:
                self._advance(instance, lambda runner: runner.fire_timers())
            except Exception:  # one broken instance must not keep the others' timers from firing
                log.exception("firing the timers of process instance %s failed", process_instance_id)
        await self._store.durable()
        return self._store.next_timer_due()

    def resume_timers(self) -> None:
        """After a (re)start: ring when the earliest stored timer is due (at once for those due while down)."""
        self._clock.wake_at(self._store.next_timer_due())

    async def close(self) -> None:
        await self._clock.close()
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)

    def _send_on(self, events: Sequence[OutboundEvent], owner_id: str) -> None:
        """Messages and signals an instance threw that nothing inside it caught go to the other instances."""
        identity = _acting_for(owner_id)
        for event in events:
            task = asyncio.get_running_loop().create_task(
                self.trigger(event.kind, event.name, payload=event.payload, process_instance_id=None, identity=identity)
            )
            self._deliveries.add(task)
            task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivering a thrown event failed", exc_info=task.exception())

    # -- advancing an instance -------------------------------------------------------------------------------

    def _runner(self, instance: Mapping[str, Any]) -> ProcessRunner:
        process_instance_id = str(instance["process_instance_id"])
        runner = self._runners.get(process_instance_id)
        if runner is None:
            parsed = self._parsed_by_hash(str(instance["definition_hash"]))
            runner = ProcessRunner.load(parsed, str(instance["process_model_id"]), str(instance["workflow"]))
            self._runners[process_instance_id] = runner
        return runner

    def _advance(
        self,
        instance: Mapping[str, Any],
        act: Any,
        *,
        finished_task: tuple[str, str, dict[str, Any] | None] | None = None,
        terminated_by: str | None = None,
    ) -> None:
        process_instance_id = str(instance["process_instance_id"])
        runner = self._runner(instance)
        try:
            act(runner)
            snapshot = runner.snapshot()
            stamp = now_iso()
            with self._store.transaction():
                events = self._apply_snapshot(
                    instance,
                    runner,
                    snapshot,
                    stamp,
                    finished_task=finished_task,
                    terminated_by=terminated_by,
                )
        except KeyError as exc:
            self._runners.pop(process_instance_id, None)
            raise EngineHttpError(404, f"Flow node instance {exc} is not waiting in its process instance.") from exc
        except BaseException:
            # The in-memory workflow may be half-advanced: forget it; the store still has the committed state.
            self._runners.pop(process_instance_id, None)
            raise
        self._after_commit(events, process_instance_id, snapshot)

    def _after_commit(
        self,
        events: Sequence[tuple[str, dict[str, Any], str | None]],
        process_instance_id: str,
        snapshot: InstanceSnapshot,
    ) -> None:
        """Events and start waiters see a change only once it is durable."""

        runner = self._runners.get(process_instance_id)
        waits = runner.waits() if runner is not None else ()
        thrown = runner.outbound_events() if runner is not None else ()
        instance = self._store.get_instance(process_instance_id) if thrown else None
        owner_id = str(instance["owner_id"]) if instance is not None else DUMMY_USER_ID

        def publish() -> None:
            self._publish_all(events)
            self._resolve_waiters(process_instance_id, snapshot)
            for wait in waits:
                self._clock.wake_at(wait.due_at)
            if thrown:
                self._send_on(thrown, owner_id)

        self._store.after_commit(publish)

    def _apply_snapshot(
        self,
        instance: Mapping[str, Any],
        runner: ProcessRunner,
        snapshot: InstanceSnapshot,
        stamp: str,
        *,
        finished_task: tuple[str, str, dict[str, Any] | None] | None = None,
        terminated_by: str | None = None,
    ) -> list[tuple[str, dict[str, Any], str | None]]:
        """Write the instance's new state; return the events to publish once the transaction is committed."""
        process_instance_id = str(instance["process_instance_id"])
        existing = self._store.flow_nodes_of_instance(process_instance_id)
        events: list[tuple[str, dict[str, Any], str | None]] = []
        for node in snapshot.flow_node_instances:
            old = existing.get(node.flow_node_instance_id)
            if old is not None and old["state"] == node.state and old["end_token"] == node.end_token:
                continue
            ended = node.state in ("finished", "terminated", "error", "canceled")
            row: dict[str, Any] = {
                "flow_node_instance_id": node.flow_node_instance_id,
                "flow_node_id": node.flow_node_id,
                "flow_node_name": node.flow_node_name or node.flow_node_id,
                "flow_node_type": node.flow_node_type,
                "flow_node_lane": node.flow_node_lane,
                "event_type": getattr(node, "event_type", None),
                "state": node.state,
                "process_instance_id": process_instance_id,
                "process_model_id": instance["process_model_id"],
                "process_model_name": instance["process_model_name"],
                "process_definition_id": instance["definition_id"],
                "correlation_id": instance["correlation_id"],
                "owner_id": instance["owner_id"],
                "parent_process_instance_id": None,
                "previous_flow_node_instance_id": node.previous_flow_node_instance_id,
                "start_token": node.start_token if node.start_token is not None else {},
                "end_token": node.end_token,
                "user_task_config": node.user_task_config,
                "actual_owner_id": old["actual_owner_id"] if old else None,
                "finished_by_user_id": old["finished_by_user_id"] if old else None,
                "error": node.error,
                "created_at": old["created_at"] if old else stamp,
                "updated_at": stamp,
                "finished_at": (old["finished_at"] if old and old["finished_at"] else stamp) if ended else None,
            }
            if finished_task is not None and node.flow_node_instance_id == finished_task[0]:
                row["finished_by_user_id"] = finished_task[1]
            self._store.upsert_flow_node(row)
            events += _node_events(node, old, row, finished_task)
        fields: dict[str, Any] = {
            "state": snapshot.state,
            "workflow": runner.serialize(),
            "error": snapshot.error,
        }
        if snapshot.state in ENDED_STATES and instance["state"] not in ENDED_STATES:
            fields["finished_at"] = stamp
            process_message = process_event(instance, snapshot)
            name = {"finished": "process_ended", "error": "process_error", "terminated": "process_terminated"}
            events.append((name[snapshot.state], process_message, None))
        if snapshot.state == "finished":
            fields["end_event_id"] = snapshot.end_event_id
            fields["end_token"] = snapshot.end_token
        if terminated_by is not None:
            fields["terminated_by"] = terminated_by
        if snapshot.state == "error" and instance["state"] != "error":
            log.warning("process instance %s failed: %s", process_instance_id, snapshot.error)
        # External tasks: created for the service tasks that now wait for a worker, ended with their nodes.
        events += self.external_tasks.apply_snapshot(instance, runner, snapshot, stamp)
        self._store.update_instance(process_instance_id, **fields)
        waits = runner.waits()
        self._store.replace_waits(process_instance_id, [(w.kind, w.name, w.due_at, w.flow_node_id) for w in waits])
        return events

    def _publish(self, name: str, message: dict[str, Any], lane: str | None) -> None:
        try:
            self._bus.publish(name, message, lane=lane)
        except Exception:  # an event consumer must never fail a committed write
            log.exception("publishing %s failed", name)

    def _publish_all(self, events: Sequence[tuple[str, dict[str, Any], str | None]]) -> None:
        for name, message, lane in events:
            self._publish(name, message, lane)

    # -- rules -----------------------------------------------------------------------------------------------

    @staticmethod
    def _require_write(identity: Identity) -> None:
        if identity.has_scope("engine_write"):
            return
        raise EngineHttpError(403, f"'{identity.user_id}' lacks the scope 'engine_write' needed for this action.")


def _node_events(
    node: FlowNodeInstanceSnapshot,
    old: Mapping[str, Any] | None,
    row: Mapping[str, Any],
    finished_task: tuple[str, str, dict[str, Any] | None] | None,
) -> list[tuple[str, dict[str, Any], str | None]]:
    """The events a flow node's change of state publishes: waiting and finished for what people finish and what
    waits for events, canceled for whatever an interrupting event cut short."""
    if old is not None and old["state"] == node.state:
        return []
    lane = node.flow_node_lane
    message = task_event(row, current_token=node.start_token)
    activity = node.flow_node_type.endswith(("Task", "Activity", "SubProcess"))
    names: list[str] = []
    if old is None and activity:
        names.append("activity_reached")
    if node.state == "canceled" and activity:
        names.append("activity_canceled")
    waiting, finished = _WAITING_EVENTS.get(node.flow_node_type, ((), ()))
    if node.state == "suspended":
        names += waiting
    if node.state == "finished":
        message["currentToken"] = node.end_token
        if node.flow_node_type == USER_TASK:
            message["userTaskResult"] = (
                finished_task[2] if finished_task and finished_task[0] == node.flow_node_instance_id else node.end_token
            )
        names += finished
        names += _FINISHED_EVENTS.get(node.flow_node_type, ("activity_finished",) if activity else ())
    return [(name, message, lane) for name in names]


def _acting_for(owner_id: str) -> Identity:
    """The engine itself, delivering what an instance of ``owner_id`` threw (and starting what it starts for them)."""
    return Identity(user_id=owner_id, token="", scopes=frozenset({"engine_read", "engine_write"}), claims={})


def _model_sort_key(deployed: _DeployedModel) -> str:
    return deployed.model.process_model_id
