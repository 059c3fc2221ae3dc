"""A deployed document in the form instances run on: SpiffWorkflow specs and what is built once for them.

:func:`~embedded_engine.bpmn.parsing.parse_definitions` compiles a document once, at deployment (or when the engine
loads it from the store); every instance of it, started or loaded, shares the result: the specs of its executable
processes, the table of renamed ids, the code tables, the token bookkeeping wired into the specs, one script
engine and one serializer.

The serializer stores an instance's state only, never its spec: on load, the spec comes from the same deployed
definitions (the store keeps every version an instance was started on).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from .model import FlowNodeDef
from .scripts import Condition, JsScriptEngine, Script, TimerExpression
from .tokens import TokenKeeper

__all__ = ["CompiledDefinitions", "CompiledProcess"]


@dataclass
class CompiledProcess:
    """What SpiffWorkflow builds a workflow of: a process's spec and the specs of its subprocesses."""

    spec: Any
    subprocess_specs: dict[str, Any]


class CompiledDefinitions:
    """Everything built once per deployed document: specs, code tables, the script engine, the serializer.

    ``nodes`` are the document's flow nodes by their model ids; ``original_ids`` maps the SpiffWorkflow id of
    every renamed flow node back to its model id; ``processes`` holds the executable processes by id.
    """

    def __init__(
        self,
        *,
        nodes: dict[str, FlowNodeDef],
        original_ids: dict[str, str],
        conditions: dict[str, Condition],
        scripts: dict[str, Script],
        processes: dict[str, CompiledProcess],
        timers: dict[str, TimerExpression] | None = None,
    ) -> None:
        self.nodes = nodes
        self.original_ids = original_ids
        self.conditions = conditions
        self.scripts = scripts
        self.processes = processes
        self.gateway_flows: dict[str, list[Condition]] = {}
        for cond in conditions.values():
            self.gateway_flows.setdefault(cond.source_id, []).append(cond)
        self.tokens = TokenKeeper(original_ids)
        self.tokens.wire(self.specs())
        self.engine = JsScriptEngine(conditions, scripts, self.tokens, timers)
        config = dict(CAMUNDA_CONFIG)
        config[BpmnWorkflow] = _state_only_converter(processes)
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))

    def specs(self) -> Iterator[Any]:
        """Every spec, process by process: the process's own, then its subprocesses' (shared ones repeat)."""
        for compiled in self.processes.values():
            yield from [compiled.spec, *compiled.subprocess_specs.values()]

    def start_triggers(self, kind: str, name: str) -> list[tuple[str, str]]:
        """The (process model id, start event id) pairs whose start event a ``kind`` event called ``name`` starts."""
        return [
            (process_id, self.original_id(spec.bpmn_id))
            for process_id, compiled in self.processes.items()
            for spec in compiled.spec.task_specs.values()
            if getattr(spec, "bpmn_id", None) is not None
            and spec.__class__.__name__ == "StartEvent"
            and _trigger(spec) == (kind, name)
        ]

    def start_trigger(self, process_id: str, start_event_id: str) -> tuple[str, str] | None:
        """What starts this start event besides the API: ``("message"|"signal", name)``, or None for a none start."""
        compiled = self.processes.get(process_id)
        if compiled is None:
            return None
        for spec in compiled.spec.task_specs.values():
            bpmn_id = getattr(spec, "bpmn_id", None)
            if bpmn_id is not None and self.original_id(bpmn_id) == start_event_id:
                return _trigger(spec)
        return None

    def original_id(self, spiff_id: str) -> str:
        """The model's id of a flow node SpiffWorkflow knows as ``spiff_id``."""
        return self.original_ids.get(spiff_id, spiff_id)


def _trigger(spec: Any) -> tuple[str, str] | None:
    definition = getattr(spec, "event_definition", None)
    if isinstance(definition, MessageEventDefinition):
        return ("message", str(definition.name))
    if isinstance(definition, SignalEventDefinition):
        return ("signal", str(definition.name))
    return None


def _state_only_converter(processes: Mapping[str, CompiledProcess]) -> type:
    class _StateOnlyWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
        """Serializes the instance state only; the spec comes from the deployed definitions on load."""

        def to_dict(self, workflow: Any) -> dict[str, Any]:
            dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
            dct["spec"] = workflow.spec.name
            dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
            dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
            return dct

        def from_dict(self, dct: dict[str, Any]) -> Any:
            name = dct.pop("spec")
            compiled = processes.get(name) if isinstance(name, str) else None
            if compiled is None:
                raise ValueError(f"The stored state belongs to an unknown process model {name!r}")
            workflow = self.target_class(compiled.spec, compiled.subprocess_specs, deserializing=True)
            workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
            workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
            self.set_default_attributes(workflow, dct)
            self.subprocesses_from_dict(dct["subprocesses"], workflow)
            workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
            return workflow

    return _StateOnlyWorkflowConverter
