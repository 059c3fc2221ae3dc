"""Running a process instance: SpiffWorkflow's workflow, reported the way ProcessCube reports it.

:class:`ProcessRunner` starts an instance of a parsed process model (or loads one from its serialized state) and
runs it until it waits: at a user task for a human, at an external service task for a worker. Finishing such a
task runs it on. :meth:`ProcessRunner.snapshot` is the instance as ProcessCube reports it: its state and every
reached flow node with its state, tokens and user task config, all under the model's own ids.

**Errors are state, not exceptions.** A condition that throws, a gateway where nothing matches, a failing script:
the instance goes to state ``"error"`` with a message (naming the sequence flow and the expression where there is
one), keeps its data, and its other open nodes are terminated. :class:`ProcessRunner` raises only for caller
mistakes (unknown ids, a token or result that is not JSON).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.defaults import ManualTask, NoneTask, ServiceTask, UserTask
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.util.task import TaskState

from . import external as _external
from .compiled import CompiledDefinitions, CompiledProcess
from .model import (
    FlowNodeInstanceSnapshot,
    FlowNodeState,
    InstanceSnapshot,
    InstanceState,
    OutboundEvent,
    ParsedDefinitions,
    Wait,
    WaitKind,
)
from .scripts import ModelError
from .tokens import completed_token, completion_order, set_initial_token, set_result

__all__ = ["ProcessRunner"]

# Keys in SpiffWorkflow's task.internal_data / workflow.data (the token's keys are in .tokens).
_TERMINATED: Final = "pc_terminated"  # a reached node that terminate() (or an error elsewhere) ended
_CANCELED: Final = "pc_canceled"  # a reached node that an interrupting boundary event (or event gateway) cancelled
_MESSAGE_RESULT_VAR: Final = "pc_message"  # where SpiffWorkflow's Camunda message catch puts its payload (unused)
_WF_ERROR: Final = "pc_error"
_WF_TERMINATED: Final = "pc_terminated"


_PASS: Final = object()  # "no result": the node passes its token on unchanged


def _event_definitions(task: Any) -> list[Any]:
    """What a task's spec waits for: its event definition, or each of several (an event-based gateway's)."""
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [] if definition is None else [definition]


def _timer_due(task: Any, definition: Any) -> str | None:
    """When a waiting timer fires, as an ISO 8601 UTC string; None until SpiffWorkflow has computed it."""
    value = task.internal_data.get("event_value")
    if value is None:
        return None
    try:
        if isinstance(definition, CycleTimerEventDefinition):
            if not isinstance(value, dict) or value.get("cycles") == 0:
                return None
            when = datetime.fromisoformat(str(value["next"]))
        else:
            when = TimerEventDefinition.get_datetime(str(value))
    except (ValueError, KeyError, TypeError):
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iter_tasks(workflow: Any) -> Iterator[Any]:
    yield from workflow.tasks.values()
    for sub in workflow.subprocesses.values():
        yield from sub.tasks.values()


class ProcessRunner:
    """One process instance: SpiffWorkflow's workflow plus ProcessCube's view of it.

    Not thread-safe: the caller serializes access to one instance (the engine core changes instances only on its
    event loop thread).
    """

    # Where the instance waits for someone: a user task, a manual task, an untyped (empty) task.
    _USER_SPECS: ClassVar[tuple[type, ...]] = (UserTask, ManualTask, NoneTask)

    def __init__(self, definitions: ParsedDefinitions, process_model_id: str, workflow: Any) -> None:
        compiled = definitions.compiled
        assert compiled is not None
        self._definitions = definitions
        self._compiled = compiled
        self._process_model_id = process_model_id
        self._workflow = workflow
        workflow.script_engine = compiled.engine
        self._snapshot: InstanceSnapshot | None = None

    @staticmethod
    def _compiled_process(
        definitions: ParsedDefinitions, process_model_id: str
    ) -> tuple[CompiledDefinitions, CompiledProcess]:
        compiled = definitions.compiled
        if compiled is None:
            raise ValueError("The definitions were not produced by parse_definitions()")
        process = compiled.processes.get(process_model_id)
        if process is None:
            raise ValueError(f"Unknown or not executable process model {process_model_id!r}")
        return compiled, process

    @classmethod
    def start(
        cls,
        definitions: ParsedDefinitions,
        process_model_id: str,
        *,
        initial_token: Any,
        start_event_id: str | None = None,
    ) -> ProcessRunner:
        """Create an instance and run it until it waits (a user or external task), ends or fails.

        Model failures become the instance's ``"error"`` state; ``ValueError`` only for a bad
        ``process_model_id`` or ``start_event_id``.
        """
        compiled, process = cls._compiled_process(definitions, process_model_id)
        model = definitions.process_model(process_model_id)
        start_ids = [e.id for e in model.start_events]
        if start_event_id is not None and start_event_id not in start_ids:
            raise ValueError(f"Process model {process_model_id!r} has no start event {start_event_id!r}")
        try:
            token = json.loads(json.dumps(initial_token))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The initial token is not JSON: {exc}") from exc
        workflow = BpmnWorkflow(process.spec, process.subprocess_specs, script_engine=compiled.engine)
        set_initial_token(workflow, token)
        runner = cls(definitions, process_model_id, workflow)
        chosen = start_event_id or start_ids[0]
        if len(start_ids) > 1 or compiled.start_trigger(process_model_id, chosen) is not None:
            # Several start events, or one that waits for a message or signal: run the one asked for, else the
            # first in the document (our choice); a start through the API needs no message.
            runner._select_start_event(chosen)
        runner._run()
        return runner

    @classmethod
    def load(cls, definitions: ParsedDefinitions, process_model_id: str, state: str) -> ProcessRunner:
        """Restore an instance from :meth:`serialize` against the same deployed definitions."""
        compiled, process = cls._compiled_process(definitions, process_model_id)
        workflow = compiled.serializer.deserialize_json(state)
        if workflow.spec is not process.spec:
            raise ValueError(f"The stored state does not belong to process model {process_model_id!r}")
        return cls(definitions, process_model_id, workflow)

    @property
    def process_model_id(self) -> str:
        return self._process_model_id

    def serialize(self) -> str:
        """The instance state as a JSON string (without the spec: :meth:`load` takes it from the definitions)."""
        return str(self._compiled.serializer.serialize_json(self._workflow))

    # -- actions -----------------------------------------------------------------------------------------------

    def finish_user_task(self, flow_node_instance_id: str, result: dict[str, Any]) -> None:
        """Complete a suspended user task with ``result`` and run on; ``KeyError`` if there is no such task."""
        self._complete_with(self._waiting(flow_node_instance_id, UserTask), result, run=True)

    def finish_manual_task(self, flow_node_instance_id: str) -> None:
        """Complete a suspended manual task (its token passes on unchanged) and run on; ``KeyError`` if none."""
        self._complete_with(self._waiting(flow_node_instance_id, ManualTask), _PASS, run=True)

    def finish_untyped_task(self, flow_node_instance_id: str) -> None:
        """Complete a suspended untyped (empty) task (its token passes on unchanged), run on; ``KeyError`` if none."""
        self._complete_with(self._waiting(flow_node_instance_id, NoneTask), _PASS, run=True)

    def catch(self, kind: WaitKind, name: str, payload: Any = None) -> bool:
        """Deliver a message or signal called ``name``; False (and nothing changes) when nothing here waits for it.

        Each catching node's result is ``payload`` (it becomes ``token.current``); without a payload the token passes
        on unchanged. A caught event at a boundary interrupts its activity when the boundary event is interrupting.
        """
        if self._closed() or kind == "timer":
            return False
        definition_type = MessageEventDefinition if kind == "message" else SignalEventDefinition
        catchers: list[tuple[Any, Any]] = [
            (task, definition)
            for task in _iter_tasks(self._workflow)
            if task.state == TaskState.WAITING
            for definition in _event_definitions(task)
            if isinstance(definition, definition_type) and definition.name == name
        ]
        if not catchers:
            return False
        try:
            value = json.loads(json.dumps(payload))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The payload is not JSON: {exc}") from exc
        if value is not None:
            for task, _definition in catchers:
                set_result(task, copy.deepcopy(value))
        definition = catchers[0][1]
        spiff_payload = {"payload": None, "result_var": _MESSAGE_RESULT_VAR} if kind == "message" else None
        self._interruptible(lambda: self._workflow.catch(BpmnEvent(definition, payload=spiff_payload)))
        return True

    def fire_timers(self) -> None:
        """Let every timer whose time has come fire, and run on from there."""
        if self._closed():
            return
        self._interruptible(self._workflow.refresh_timers)

    def fire_timer(self, flow_node_instance_id: str) -> None:
        """Fire this waiting timer now, whatever its due time; ``KeyError`` if no such timer waits."""
        task = self._find_task(flow_node_instance_id)
        if (
            task is None
            or task.state != TaskState.WAITING
            or not any(isinstance(d, TimerEventDefinition) for d in _event_definitions(task))
            or self._closed()
        ):
            raise KeyError(flow_node_instance_id)
        cycle = task.internal_data.get("event_value")
        if any(isinstance(d, CycleTimerEventDefinition) for d in _event_definitions(task)) and isinstance(cycle, dict):
            cycle["next"] = datetime.now(UTC).isoformat()  # a cycle fires by its next time, not by a flag
        else:
            task.internal_data["event_fired"] = True
        self._interruptible(self._workflow.refresh_timers)

    def waits(self) -> tuple[Wait, ...]:
        """What the instance waits for besides people and workers: messages, signals, timers (with their due time)."""
        if self._closed() or self._workflow.is_completed():
            return ()
        found: list[Wait] = []
        for task in _iter_tasks(self._workflow):
            if task.state != TaskState.WAITING:
                continue
            bpmn_id = getattr(task.task_spec, "bpmn_id", None)
            node_id = self._compiled.original_id(bpmn_id) if bpmn_id is not None else ""
            for definition in _event_definitions(task):
                if isinstance(definition, MessageEventDefinition):
                    found.append(Wait("message", definition.name, None, node_id, str(task.id)))
                elif isinstance(definition, SignalEventDefinition):
                    found.append(Wait("signal", definition.name, None, node_id, str(task.id)))
                elif isinstance(definition, TimerEventDefinition):
                    found.append(Wait("timer", None, _timer_due(task, definition), node_id, str(task.id)))
        return tuple(found)

    def outbound_events(self) -> tuple[OutboundEvent, ...]:
        """Messages and signals the instance threw that nothing inside it caught: the engine delivers them on."""
        found: list[OutboundEvent] = []
        for event in self._workflow.get_events():
            definition = event.event_definition
            if isinstance(definition, MessageEventDefinition):
                payload = event.payload.get("payload") if isinstance(event.payload, dict) else None
                found.append(OutboundEvent("message", definition.name, payload))
            elif isinstance(definition, SignalEventDefinition):
                found.append(OutboundEvent("signal", definition.name, None))
        return tuple(found)

    def finish_external_task(self, flow_node_instance_id: str, result: Any) -> None:
        """Complete a waiting external service task with ``result`` (what a worker would do), then run on.

        ``KeyError`` if there is no such waiting task. Not part of the user-task API; it lets tests and demo
        workers get past the external tasks that real ProcessCube models contain.
        """
        task = self._find_task(flow_node_instance_id)
        if (
            task is None
            or not isinstance(task.task_spec, ServiceTask)
            or task.state != TaskState.STARTED
            or self._closed()
        ):
            raise KeyError(flow_node_instance_id)
        self._complete_with(task, result, run=False)

    def external_task(self, flow_node_instance_id: str) -> tuple[_external.ExternalTaskDef, Any] | None:
        """The definition and payload of the waiting external service task with this id; None if it is not one."""
        return _external.payload_of(self, flow_node_instance_id)

    def error_external_task(
        self, flow_node_instance_id: str, error_code: str, message: str | None = None, details: Any = None
    ) -> bool:
        """A worker's error for a waiting external service task (see :func:`.external.throw_error`).

        The task becomes ``"error"``; an error boundary event of it whose error code matches (or that has none)
        catches the error and the token leaves through it: True. Otherwise the instance fails with ``message``:
        False. ``KeyError`` if there is no such waiting task.
        """
        return _external.throw_error(self, flow_node_instance_id, error_code, message, details)

    def terminate(self) -> None:
        """Cancel the instance: its reached, unfinished nodes become ``"terminated"``, the instance too."""
        if self._closed() or self._workflow.is_completed():
            return
        self._terminate_open_nodes()
        self._workflow.data[_WF_TERMINATED] = True
        self._snapshot = None

    # -- views -------------------------------------------------------------------------------------------------

    def snapshot(self) -> InstanceSnapshot:
        """The instance as ProcessCube reports it; cached until the next change."""
        if self._snapshot is None:
            self._snapshot = self._build_snapshot()
        return self._snapshot

    # -- internals ---------------------------------------------------------------------------------------------

    def _closed(self) -> bool:
        data = self._workflow.data
        return bool(data.get(_WF_ERROR) is not None or data.get(_WF_TERMINATED))

    def _find_task(self, flow_node_instance_id: str) -> Any:
        try:
            uuid = UUID(flow_node_instance_id)
        except (ValueError, TypeError, AttributeError):
            return None
        try:
            return self._workflow.get_task_from_id(uuid)
        except Exception:
            return None

    def _waiting(self, flow_node_instance_id: str, spec_type: type) -> Any:
        """The suspended task of this type with this id; ``KeyError`` if there is none (or the instance ended)."""
        task = self._find_task(flow_node_instance_id)
        if task is None or not isinstance(task.task_spec, spec_type) or task.state != TaskState.READY or self._closed():
            raise KeyError(flow_node_instance_id)
        return task

    def _complete_with(self, task: Any, result: Any, *, run: bool) -> None:
        if result is not _PASS:
            try:
                value = json.loads(json.dumps(result))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"The result is not JSON: {exc}") from exc
            set_result(task, value)
        self._snapshot = None

        def complete() -> None:
            if run:
                task.run()
            else:
                task.complete()

        self._interruptible(complete)

    def _interruptible(self, action: Any) -> None:
        """Run ``action`` then the engine steps; nodes it cancels on the way (an interrupting boundary event, the
        other branches of an event-based gateway) are marked, so the snapshot reports them as ``"canceled"``."""
        self._snapshot = None
        open_before = [
            task
            for task in _iter_tasks(self._workflow)
            if task.state & (TaskState.READY | TaskState.STARTED | TaskState.WAITING) and self._reached(task)
        ]
        try:
            action()
        except Exception as exc:
            self._fail(exc)
            return
        self._run()
        for task in open_before:
            if task.state == TaskState.CANCELLED and not task.internal_data.get(_TERMINATED):
                task.internal_data[_CANCELED] = True

    def _select_start_event(self, start_event_id: str) -> None:
        # With several start events SpiffWorkflow waits on all of them; run the helper tasks up to there, then
        # cancel every start event but the chosen one.
        original_ids = self._compiled.original_ids
        spiff_id = next((new for new, old in original_ids.items() if old == start_event_id), start_event_id)
        workflow = self._workflow
        for _ in range(3):
            for task in workflow.get_tasks(state=TaskState.READY):
                if task.task_spec.bpmn_id is None:
                    task.run()
        for task in list(workflow.tasks.values()):
            spec = task.task_spec
            if (
                getattr(spec, "bpmn_id", None) is not None
                and spec.__class__.__name__ == "StartEvent"
                and spec.name != spiff_id
                and not task.has_state(TaskState.FINISHED_MASK)
            ):
                task.cancel()
        for task in workflow.get_tasks(spec_name=spiff_id):
            if task.state == TaskState.WAITING:
                definition = getattr(task.task_spec, "event_definition", None)
                if isinstance(definition, MessageEventDefinition):
                    # started through the API or by its message: no message payload for SpiffWorkflow to copy
                    task.internal_data[definition.name] = {"payload": None, "result_var": _MESSAGE_RESULT_VAR}
                task._ready()

    def _run(self) -> None:
        self._snapshot = None
        try:
            self._workflow.do_engine_steps()
        except Exception as exc:
            self._fail(exc)
            return
        _external.prepare(self)  # the payloads of the external tasks just reached (see bpmn/external.py)

    def _fail(self, exc: BaseException) -> None:
        workflow = self._workflow
        failed = [t for t in _iter_tasks(workflow) if t.state == TaskState.ERROR and completion_order(t) is None]
        task = failed[-1] if failed else getattr(exc, "task", None)
        details: dict[str, Any] = {}
        if isinstance(exc, ModelError):
            message = exc.message
            details = exc.details
        else:
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            spec = getattr(task, "task_spec", None)
            bpmn_id = getattr(spec, "bpmn_id", None)
            if bpmn_id is not None and message.startswith("No conditions satisfied"):
                gateway = self._compiled.original_id(bpmn_id)
                flows = ", ".join(
                    f"{c.flow_id} (`{c.expression}`)" for c in self._compiled.gateway_flows.get(gateway, [])
                )
                message = f'No outgoing sequence flow of gateway "{gateway}" matched: {flows}'
        error: dict[str, Any] = {"message": message, **details}
        if task is not None and getattr(task.task_spec, "bpmn_id", None) is not None:
            error["flowNodeId"] = self._compiled.original_id(task.task_spec.bpmn_id)
            error["flowNodeInstanceId"] = str(task.id)
        self._terminate_open_nodes()
        workflow.data[_WF_ERROR] = error
        self._snapshot = None

    def _terminate_open_nodes(self) -> None:
        for task in _iter_tasks(self._workflow):
            if self._reached(task) and not task.has_state(TaskState.FINISHED_MASK):
                task.internal_data[_TERMINATED] = True
        try:
            self._workflow.cancel()
        except Exception:  # pragma: no cover - cancelling must not turn into a second failure
            for task in _iter_tasks(self._workflow):
                if not task.has_state(TaskState.FINISHED_MASK):
                    task._set_state(TaskState.CANCELLED)

    @staticmethod
    def _reached(task: Any) -> bool:
        state = task.state
        if state & (TaskState.READY | TaskState.STARTED | TaskState.COMPLETED | TaskState.ERROR):
            return True
        if state == TaskState.WAITING:
            # a waiting boundary event is a flow node instance (the engine publishes boundary_event_waiting)
            return not isinstance(task.task_spec, UnstructuredJoin)
        if state == TaskState.CANCELLED:
            return bool(task.internal_data.get(_TERMINATED) or task.internal_data.get(_CANCELED))
        return False

    def _node_state(self, task: Any) -> FlowNodeState:
        state = task.state
        if state == TaskState.COMPLETED:
            return "finished"
        if state == TaskState.ERROR:
            return "error"
        if state == TaskState.CANCELLED:
            return (
                "canceled"
                if task.internal_data.get(_CANCELED) and not task.internal_data.get(_TERMINATED)
                else "terminated"
            )
        if state == TaskState.READY:
            return "suspended" if isinstance(task.task_spec, self._USER_SPECS) else "running"
        return "suspended"

    def _build_snapshot(self) -> InstanceSnapshot:
        compiled = self._compiled
        workflow = self._workflow
        error = workflow.data.get(_WF_ERROR)
        entries: list[tuple[tuple[int, int, int], FlowNodeInstanceSnapshot]] = []
        last_end: tuple[int, str, Any] | None = None
        for order, task in enumerate(_iter_tasks(workflow)):
            spec = task.task_spec
            bpmn_id = getattr(spec, "bpmn_id", None)
            if bpmn_id is None or not self._reached(task):
                continue
            node_id = compiled.original_id(bpmn_id)
            node = compiled.nodes.get(node_id)
            state = self._node_state(task)
            out = completed_token(task)
            seq = completion_order(task) or 1 << 60  # orders start at 1; not completed sorts last
            parent_seq = (completion_order(task.parent) or 0) if task.parent is not None else 0
            if (
                node is not None
                and node.type == "bpmn:EndEvent"
                and out is not None
                and (last_end is None or seq > last_end[0])
            ):
                last_end = (seq, node_id, out["current"])
            node_error = error if state == "error" else None
            user_task_config = None
            if node is not None and node.type == "bpmn:UserTask":
                from .user_task_config import stored_config

                # evaluated against the token the task was entered with, once per task instance
                user_task_config = stored_config(
                    node.user_task_config, compiled.tokens.in_token(task), task_instance_id=str(task.id)
                )
            entries.append(
                (
                    (parent_seq, seq, order),
                    FlowNodeInstanceSnapshot(
                        flow_node_instance_id=str(task.id),
                        flow_node_id=node_id,
                        flow_node_name=node.name if node is not None else (spec.bpmn_name or ""),
                        flow_node_type=node.type if node is not None else "bpmn:Task",
                        flow_node_lane=node.lane if node is not None else spec.lane,
                        state=state,
                        start_token=copy.deepcopy(compiled.tokens.in_token(task)["current"]),
                        end_token=copy.deepcopy(out["current"]) if out is not None and state == "finished" else None,
                        previous_flow_node_instance_id=self._previous(task),
                        user_task_config=user_task_config,
                        error=node_error,
                    ),
                )
            )
        entries.sort(key=lambda e: e[0])
        instance_state: InstanceState
        if error is not None:
            instance_state = "error"
        elif workflow.data.get(_WF_TERMINATED):
            instance_state = "terminated"
        elif workflow.is_completed():
            instance_state = "finished"
        else:
            instance_state = "running"
        finished = instance_state == "finished" and last_end is not None
        return InstanceSnapshot(
            state=instance_state,
            flow_node_instances=tuple(e[1] for e in entries),
            end_event_id=last_end[1] if finished and last_end is not None else None,
            end_token=copy.deepcopy(last_end[2]) if finished and last_end is not None else None,
            error=copy.deepcopy(error) if error is not None else None,
        )

    @staticmethod
    def _previous(task: Any) -> str | None:
        parent = task.parent
        while parent is not None:
            if getattr(parent.task_spec, "bpmn_id", None) is not None:
                return str(parent.id)
            parent = parent.parent
        workflow = task.workflow
        if workflow.parent_task_id is not None:
            return str(workflow.parent_task_id)
        return None
