"""What the BPMN layer tells the rest of the engine: a deployed document's models, and an instance's state.

Plain frozen dataclasses, no SpiffWorkflow objects: :func:`~embedded_engine.bpmn.parsing.parse_definitions`
produces the definitions side (``ParsedDefinitions`` down to ``FormField``), and
:meth:`~embedded_engine.bpmn.runner.ProcessRunner.snapshot` the instance side (``InstanceSnapshot``,
``FlowNodeInstanceSnapshot``). Ids are always the model's own ids, never SpiffWorkflow's renamed ones; types are
ProcessCube's ``bpmn:<ElementName>`` (``bpmn:UserTask``, ``bpmn:ExclusiveGateway``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .compiled import CompiledDefinitions

__all__ = [
    "EnumValue",
    "FlowNodeDef",
    "FlowNodeInstanceSnapshot",
    "FlowNodeState",
    "FormField",
    "InstanceSnapshot",
    "InstanceState",
    "OutboundEvent",
    "ParsedDefinitions",
    "ProcessModelDef",
    "Wait",
    "WaitKind",
]


@dataclass(frozen=True)
class EnumValue:
    """One ``camunda:value`` of an ``enum`` form field."""

    id: str
    name: str


@dataclass(frozen=True)
class FormField:
    """A ``camunda:formField``. A field without ``type`` is a ``string`` field (our choice)."""

    id: str
    label: str
    type: str
    default_value: str | None
    enum_values: tuple[EnumValue, ...]
    custom_form: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The engine's JSON shape: optional keys are left out, never ``null``; ``enumValues`` only for enums."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "label": self.label}
        if self.default_value is not None:
            out["defaultValue"] = self.default_value
        if self.type == "enum":
            out["enumValues"] = [{"id": v.id, "name": v.name} for v in self.enum_values]
        if self.custom_form is not None:
            out["customForm"] = self.custom_form
        return out


@dataclass(frozen=True)
class FlowNodeDef:
    """A flow node as modelled: ``lane`` is the lane's *name*; ``user_task_config`` is empty but for user tasks."""

    id: str
    name: str
    type: str
    lane: str | None
    form_fields: tuple[FormField, ...]
    user_task_config: dict[str, Any]


@dataclass(frozen=True)
class ProcessModelDef:
    """A ``bpmn:process``; only an executable one can be started."""

    process_model_id: str
    name: str
    is_executable: bool
    start_events: tuple[FlowNodeDef, ...]
    end_events: tuple[FlowNodeDef, ...]
    flow_nodes: tuple[FlowNodeDef, ...]


@dataclass(frozen=True)
class ParsedDefinitions:
    """A deployable ``bpmn:definitions`` document.

    ``compiled`` is what :class:`~embedded_engine.bpmn.runner.ProcessRunner` runs instances on; only
    :func:`~embedded_engine.bpmn.parsing.parse_definitions` sets it.
    """

    definitions_id: str
    xml: str
    process_models: tuple[ProcessModelDef, ...]
    compiled: CompiledDefinitions | None = field(default=None, repr=False, compare=False)

    def process_model(self, process_model_id: str) -> ProcessModelDef:
        """The process model with this id; ``KeyError`` if there is none."""
        for model in self.process_models:
            if model.process_model_id == process_model_id:
                return model
        raise KeyError(process_model_id)


FlowNodeState = Literal["running", "suspended", "finished", "terminated", "error", "canceled"]
InstanceState = Literal["running", "finished", "error", "terminated"]


@dataclass(frozen=True)
class FlowNodeInstanceSnapshot:
    """One reached flow node of an instance; a waiting user task is ``"suspended"``."""

    flow_node_instance_id: str
    flow_node_id: str
    flow_node_name: str
    flow_node_type: str
    flow_node_lane: str | None
    state: FlowNodeState
    start_token: Any
    end_token: Any | None
    previous_flow_node_instance_id: str | None
    user_task_config: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class InstanceSnapshot:
    """An instance as ProcessCube reports it; ``end_event_id``/``end_token`` only once it has finished."""

    state: InstanceState
    flow_node_instances: tuple[FlowNodeInstanceSnapshot, ...]
    end_event_id: str | None
    end_token: Any | None
    error: dict[str, Any] | None


WaitKind = Literal["message", "signal", "timer"]


@dataclass(frozen=True)
class Wait:
    """What a running instance waits for besides people and workers.

    A message or signal by ``name``, or a timer that is ``due_at`` (ISO 8601, UTC) at the catch event (or boundary
    event) ``flow_node_id``.
    """

    kind: WaitKind
    name: str | None
    due_at: str | None
    flow_node_id: str
    flow_node_instance_id: str


@dataclass(frozen=True)
class OutboundEvent:
    """A message or signal an instance threw that nothing inside it caught; the engine delivers it to the others."""

    kind: WaitKind
    name: str
    payload: Any
