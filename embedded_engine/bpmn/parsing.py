"""Parsing and running ProcessCube (5Minds Studio) BPMN models with SpiffWorkflow.

The embedded engine speaks ProcessCube's dialect: forms from ``camunda:formData``, lanes from ``bpmn:laneSet``,
JavaScript conditions on sequence flows and JavaScript script tasks, external service tasks that wait for a worker.
SpiffWorkflow does the graph walking; everything that touches the model's *content* is ours:

- **No Python ever sees model code.** Before SpiffWorkflow parses a document, every condition and script is
  replaced by an opaque key (``pc-condition:<flow id>``, ``pc-script:<task id>``) and the real JavaScript is kept in
  a table. The script engine handed to SpiffWorkflow (:class:`_JsScriptEngine`) only resolves those keys and runs
  the JavaScript through :mod:`embedded_engine.js`; anything else SpiffWorkflow might ask it (timer expressions,
  multi-instance cardinalities, ...) is refused with an error, and its Python environment refuses everything.
- **Reserved ids.** SpiffWorkflow names its own helper specs ``Start``, ``End``, ``<process>.EndJoin``,
  ``StartEventSplit``, ``StartEventJoin``, ``<id>.BoundaryEventSplit``, ``<id>.BoundaryEventJoin`` and
  ``<id> [child]``. A flow node with such an id (5Minds Studio users do name start events ``Start``) is renamed
  transparently before parsing and mapped back everywhere this module answers.
- **The token.** ProcessCube's token is ``{current, history}``: ``current`` is the previous node's result and
  ``history[flowNodeId]`` keeps each node's result. It lives in each SpiffWorkflow task's ``internal_data``
  (which SpiffWorkflow serializes but never merges or copies), so SpiffWorkflow's own data propagation cannot alias
  or mangle it. At a joining gateway, ``history`` is the union of all arriving branches, and ``current`` is the
  shallow merge of the branches' ``current`` objects in arrival order (a later branch wins a key both set); if any
  branch's ``current`` is not an object, ``current`` is the last arriving branch's.
- **Errors are state, not exceptions.** A condition that throws, a gateway where nothing matches, a failing
  script: the instance goes to state ``"error"`` with a message (naming the sequence flow and the expression where
  there is one), keeps its data, and its other open nodes are terminated. :class:`ProcessRunner` raises only for
  caller mistakes (unknown ids).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.defaults import ManualTask, NoneTask, ServiceTask, UserTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

from embedded_engine import js

# lxml ships no type stubs (and pyproject does not list it for mypy): import it as an untyped module.
etree: Any = importlib.import_module("lxml.etree")

__all__ = [
    "DeployError",
    "EnumValue",
    "FlowNodeDef",
    "FlowNodeInstanceSnapshot",
    "FlowNodeState",
    "FormField",
    "InstanceSnapshot",
    "ParsedDefinitions",
    "ProcessModelDef",
    "ProcessRunner",
    "parse_definitions",
]

BPMN_NS: Final = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS: Final = "http://camunda.org/schema/1.0/bpmn"
_B: Final = "{" + BPMN_NS + "}"
_C: Final = "{" + CAMUNDA_NS + "}"

_FLOW_NODE_TAGS: Final = frozenset(
    {
        "startEvent",
        "endEvent",
        "intermediateThrowEvent",
        "intermediateCatchEvent",
        "boundaryEvent",
        "task",
        "userTask",
        "serviceTask",
        "scriptTask",
        "manualTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
        "subProcess",
        "callActivity",
        "transaction",
        "adHocSubProcess",
    }
)
_CONDITIONAL_GATEWAYS: Final = frozenset({"exclusiveGateway", "inclusiveGateway"})
_RESERVED_IDS: Final = frozenset({"Start", "End", "Root", "StartEventSplit", "StartEventJoin"})
_RESERVED_SUFFIXES: Final = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin", " [child]")
_REF_ATTRIBUTES: Final = ("sourceRef", "targetRef", "attachedToRef", "bpmnElement")
_CONDITION_KEY: Final = "pc-condition:"
_SCRIPT_KEY: Final = "pc-script:"

# Keys in SpiffWorkflow's task.internal_data / workflow.data. Never in task.data: SpiffWorkflow merges and copies
# that between tasks on its own.
_IN: Final = "pc_in"  # token {current, history} on entry (stored for the root task and joins only)
_OUT: Final = "pc_out"  # token after the node completed
_RESULT: Final = "pc_result"  # the node's result, set by us just before completing it
_SEQ: Final = "pc_seq"  # completion order
_TERMINATED: Final = "pc_terminated"  # a reached node that terminate() (or an error elsewhere) ended
_WF_SEQ: Final = "pc_seq_counter"
_WF_ERROR: Final = "pc_error"
_WF_TERMINATED: Final = "pc_terminated"


class DeployError(Exception):
    """A BPMN document that cannot be deployed; ``line`` is the XML parser's line for malformed XML."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class EnumValue:
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
    id: str
    name: str
    type: str
    lane: str | None
    form_fields: tuple[FormField, ...]
    user_task_config: dict[str, Any]


@dataclass(frozen=True)
class ProcessModelDef:
    process_model_id: str
    name: str
    is_executable: bool
    start_events: tuple[FlowNodeDef, ...]
    end_events: tuple[FlowNodeDef, ...]
    flow_nodes: tuple[FlowNodeDef, ...]


@dataclass(frozen=True)
class ParsedDefinitions:
    definitions_id: str
    xml: str
    process_models: tuple[ProcessModelDef, ...]
    _runtime: _Runtime | None = field(default=None, repr=False, compare=False)

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
    state: InstanceState
    flow_node_instances: tuple[FlowNodeInstanceSnapshot, ...]
    end_event_id: str | None
    end_token: Any | None
    error: dict[str, Any] | None


# --------------------------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class _Condition:
    flow_id: str
    source_id: str
    expression: str


@dataclass(frozen=True)
class _Script:
    task_id: str
    body: str


@dataclass
class _CompiledProcess:
    spec: Any
    subprocess_specs: dict[str, Any]


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _bpmn_type(local_name: str) -> str:
    return "bpmn:" + local_name[:1].upper() + local_name[1:]


def _parse_xml(xml: str) -> Any:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True, huge_tree=False
    )
    try:
        data = xml.encode("utf-8")
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) else None
        where = f" at line {line}" if line is not None else ""
        raise DeployError(f"Malformed XML{where}: {exc.msg}", line=line) from exc
    except (ValueError, UnicodeError) as exc:
        raise DeployError(f"Malformed XML: {exc}") from exc


def _documentation(node: Any) -> str | None:
    doc = node.find(_B + "documentation")
    if doc is None or not (doc.text or "").strip():
        return None
    return str(doc.text)


def _form_fields(node: Any) -> tuple[FormField, ...]:
    fields: list[FormField] = []
    for form_data in node.iter(_C + "formData"):
        for xml_field in form_data.findall(_C + "formField"):
            field_id = xml_field.get("id")
            if not field_id:
                raise DeployError(f'A form field of "{node.get("id")}" has no id')
            values = tuple(
                EnumValue(id=str(v.get("id") or ""), name=str(v.get("name") or v.get("id") or ""))
                for v in xml_field.findall(_C + "value")
            )
            fields.append(
                FormField(
                    id=field_id,
                    label=xml_field.get("label") or field_id,
                    type=xml_field.get("type") or "string",
                    default_value=xml_field.get("defaultValue"),
                    enum_values=values,
                    custom_form=xml_field.get("customForm"),
                )
            )
    return tuple(fields)


def _flow_node_def(node: Any, lanes: dict[str, str]) -> FlowNodeDef:
    local = _local(node.tag)
    node_id = str(node.get("id"))
    form_fields: tuple[FormField, ...] = ()
    config: dict[str, Any] = {}
    if local == "userTask":
        form_fields = _form_fields(node)
        config = {"formFields": [f.to_json() for f in form_fields]}
        description = _documentation(node)
        if description is not None:
            config["description"] = description
    return FlowNodeDef(
        id=node_id,
        name=node.get("name") or "",
        type=_bpmn_type(local),
        lane=lanes.get(node_id),
        form_fields=form_fields,
        user_task_config=config,
    )


def _check_references(root: Any, ids: set[str]) -> None:
    for el in root.iter():
        local = _local(el.tag)
        if local in ("BPMNShape", "BPMNEdge", "BPMNPlane", "BPMNLabel"):
            continue
        for attr in ("sourceRef", "targetRef", "attachedToRef", "default"):
            ref = el.get(attr)
            if ref is not None and ref not in ids:
                raise DeployError(f'"{el.get("id") or local}" refers to an unknown element "{ref}" ({attr})')
        if local == "flowNodeRef" and (el.text or "").strip() not in ids:
            raise DeployError(f'Lane refers to an unknown flow node "{(el.text or "").strip()}"')
        if local == "participant":
            process_ref = el.get("processRef")
            if not process_ref:
                raise DeployError(f'Participant "{el.get("id")}" has no processRef')
            if process_ref not in ids:
                raise DeployError(f'Participant "{el.get("id")}" refers to an unknown process "{process_ref}"')


def _strip_data_wiring(root: Any) -> None:
    """Drop data associations and io specifications before SpiffWorkflow sees the document.

    SpiffWorkflow implements them over its Python task data (and fails a task whose output variable is missing);
    ProcessCube's data lives in the token, which we keep ourselves. Studio draws such associations freely (see the
    ``rechnungsdaten`` data object in 2_Rechnungserstellung_soll.bpmn), so they must not break a run.
    """
    doomed = [
        el
        for el in root.iter()
        if _local(el.tag) in ("dataInputAssociation", "dataOutputAssociation", "ioSpecification")
        and etree.QName(el.tag).namespace == BPMN_NS
    ]
    for el in doomed:
        parent = el.getparent()
        if parent is not None:
            parent.remove(el)


def _reserved(node_id: str, process_ids: set[str]) -> bool:
    return node_id in _RESERVED_IDS or node_id in process_ids or node_id.endswith(_RESERVED_SUFFIXES)


def _rename_reserved(root: Any, ids: set[str], process_ids: set[str]) -> dict[str, str]:
    """Rename flow nodes whose ids clash with SpiffWorkflow's helper specs; returns new id -> original id."""
    renames: dict[str, str] = {}
    for el in root.iter():
        if _local(el.tag) not in _FLOW_NODE_TAGS:
            continue
        old = el.get("id")
        if old is None or not _reserved(old, process_ids):
            continue
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", old)
        n = 1
        new = f"{base}__pc{n}"
        while new in ids or _reserved(new, process_ids):
            n += 1
            new = f"{base}__pc{n}"
        ids.add(new)
        renames[old] = new
    if not renames:
        return {}
    for el in root.iter():
        for attr in ("id", *_REF_ATTRIBUTES):
            value = el.get(attr)
            if value is not None and value in renames and (attr != "id" or _local(el.tag) in _FLOW_NODE_TAGS):
                el.set(attr, renames[value])
        if _local(el.tag) == "flowNodeRef" and (el.text or "").strip() in renames:
            el.text = renames[(el.text or "").strip()]
    return {new: old for old, new in renames.items()}


def _rewrite_code(root: Any, back: dict[str, str]) -> tuple[dict[str, _Condition], dict[str, _Script]]:
    """Replace every condition and script by an opaque key SpiffWorkflow passes back to our script engine."""
    nodes = {el.get("id"): el for el in root.iter() if el.get("id") is not None}
    outgoing: dict[str, list[Any]] = {}
    for flow in root.iter(_B + "sequenceFlow"):
        outgoing.setdefault(str(flow.get("sourceRef")), []).append(flow)
    conditions: dict[str, _Condition] = {}
    for flow in root.iter(_B + "sequenceFlow"):
        flow_id = str(flow.get("id"))
        source_id = str(flow.get("sourceRef"))
        source = nodes.get(source_id)
        cond = flow.find(_B + "conditionExpression")
        if cond is None:
            # ProcessCube takes a sequence flow without a condition; SpiffWorkflow would refuse a non-default one
            # out of a branching gateway, so it gets an always-true condition.
            if (
                source is None
                or _local(source.tag) not in _CONDITIONAL_GATEWAYS
                or len(outgoing.get(source_id, [])) < 2
                or source.get("default") == flow_id
            ):
                continue
            cond = etree.SubElement(flow, _B + "conditionExpression")
        key = _CONDITION_KEY + flow_id
        conditions[key] = _Condition(
            flow_id=flow_id, source_id=back.get(source_id, source_id), expression=cond.text or ""
        )
        for child in list(cond):
            cond.remove(child)
        cond.text = key
    scripts: dict[str, _Script] = {}
    for task in root.iter(_B + "scriptTask"):
        task_id = str(task.get("id"))
        script = task.find(_B + "script")
        if script is None:
            script = etree.SubElement(task, _B + "script")
        key = _SCRIPT_KEY + task_id
        scripts[key] = _Script(task_id=back.get(task_id, task_id), body=script.text or "")
        script.text = key
    return conditions, scripts


def parse_definitions(xml: str) -> ParsedDefinitions:
    """Parse and fully validate a BPMN document; raise :class:`DeployError` for anything that cannot run.

    SpiffWorkflow builds the spec of every executable process here, once; starting instances reuses them.
    """
    root = _parse_xml(xml)
    if _local(root.tag) != "definitions" or etree.QName(root.tag).namespace != BPMN_NS:
        raise DeployError("The document is not a BPMN 2.0 definitions element")
    definitions_id = root.get("id")
    if not definitions_id:
        raise DeployError("The definitions element has no id")
    ids = {str(el.get("id")) for el in root.iter() if el.get("id") is not None}
    _check_references(root, ids)

    processes = root.findall(_B + "process")
    participant_names = {p.get("processRef"): p.get("name") for p in root.iter(_B + "participant") if p.get("name")}
    models: list[ProcessModelDef] = []
    for process in processes:
        pid = process.get("id")
        if not pid:
            raise DeployError("A process has no id")
        lanes: dict[str, str] = {}
        for lane in process.iter(_B + "lane"):
            for ref in lane.findall(_B + "flowNodeRef"):
                if lane.get("name") and ref.text:
                    lanes[ref.text.strip()] = str(lane.get("name"))
        nodes = tuple(_flow_node_def(el, lanes) for el in process.iter() if _local(el.tag) in _FLOW_NODE_TAGS)
        models.append(
            ProcessModelDef(
                process_model_id=pid,
                name=process.get("name") or participant_names.get(pid) or pid,
                is_executable=process.get("isExecutable", "false") == "true",
                start_events=tuple(_flow_node_def(el, lanes) for el in process.findall(_B + "startEvent")),
                end_events=tuple(_flow_node_def(el, lanes) for el in process.findall(_B + "endEvent")),
                flow_nodes=nodes,
            )
        )
    executable = [m for m in models if m.is_executable]
    if not executable:
        raise DeployError('The document has no executable process (bpmn:process with isExecutable="true")')
    for model in executable:
        if not model.start_events:
            raise DeployError(f'Process "{model.process_model_id}" has no start event')

    process_ids = {str(p.get("id")) for p in processes}
    _strip_data_wiring(root)
    back = _rename_reserved(root, ids, process_ids)
    conditions, scripts = _rewrite_code(root, back)
    nodes_by_id = {n.id: n for m in models for n in m.flow_nodes}
    runtime = _Runtime(nodes=nodes_by_id, back=back, conditions=conditions, scripts=scripts)

    spiff_parser = CamundaParser()
    try:
        spiff_parser.add_bpmn_xml(root, filename=definitions_id)
        for model in executable:
            pid = model.process_model_id
            spec = spiff_parser.get_spec(pid)
            subprocess_specs = spiff_parser.get_subprocess_specs(pid)
            runtime.processes[pid] = _CompiledProcess(spec=spec, subprocess_specs=subprocess_specs)
    except DeployError:
        raise
    except ValidationException as exc:
        node_id = getattr(exc, "id", "") or ""
        node_id = back.get(node_id, node_id)
        where = f' at "{node_id}"' if node_id else ""
        raise DeployError(f"Invalid BPMN{where}: {exc.args[0] if exc.args else exc}") from exc
    except Exception as exc:
        raise DeployError(f"Invalid BPMN: {exc}") from exc
    runtime.wire()
    for compiled in runtime.processes.values():
        for spec in [compiled.spec, *compiled.subprocess_specs.values()]:
            for task_spec in spec.task_specs.values() if spec is not None else ():
                if isinstance(task_spec, NoneTask):
                    # An empty bpmn:task is a pass-through in ProcessCube; SpiffWorkflow waits for a human there.
                    task_spec.manual = False
    return ParsedDefinitions(definitions_id=definitions_id, xml=xml, process_models=tuple(models), _runtime=runtime)


# --------------------------------------------------------------------------------------------------------------
# Running


class _ModelError(Exception):
    """A runtime failure of the model's own content; becomes the instance's error."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class _NoPythonEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """SpiffWorkflow's Python environment, disabled: some of its code paths call it directly."""

    def evaluate(self, expression: Any, context: Any, external_context: Any = None) -> Any:
        raise _ModelError("Expressions outside of sequence-flow conditions are not supported", {})

    def execute(self, script: Any, context: Any, external_context: Any = None) -> Any:
        raise _ModelError("Scripts outside of script tasks are not supported", {})

    def call_service(self, context: Any, **kwargs: Any) -> Any:
        raise _ModelError("Service calls are not supported", {})


class _JsScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """SpiffWorkflow's script engine, routed to the JavaScript sandbox; it never evaluates Python."""

    def __init__(self, runtime: _Runtime) -> None:
        super().__init__(environment=_NoPythonEnvironment())
        self._runtime = runtime

    def validate(self, expression: Any) -> None:
        raise _ModelError("Expressions outside of sequence-flow conditions are not supported", {})

    def evaluate(self, task: Any, expression: Any, external_context: Any = None) -> Any:
        cond = self._runtime.conditions.get(expression) if isinstance(expression, str) else None
        if cond is None:
            raise _ModelError(
                "The embedded engine does not support this expression (only sequence-flow conditions are "
                f"evaluated): {str(expression)[:200]!r}",
                {},
            )
        token = self._runtime.in_token(task)
        try:
            return js.evaluate_condition(cond.expression, token)
        except js.JsEvaluationError as exc:
            raise _ModelError(
                f'Condition of sequence flow "{cond.flow_id}" failed: `{cond.expression}`: {exc.message}',
                {"sequenceFlowId": cond.flow_id, "expression": cond.expression},
            ) from exc

    def execute(self, task: Any, script: Any, external_context: Any = None) -> Any:
        entry = self._runtime.scripts.get(script) if isinstance(script, str) else None
        if entry is None:
            raise _ModelError("The embedded engine only runs the scripts of script tasks", {})
        token = self._runtime.in_token(task)
        try:
            result = js.run_script(entry.body, token)
        except js.JsEvaluationError as exc:
            raise _ModelError(f'Script task "{entry.task_id}" failed: {exc.message}', {"script": entry.body}) from exc
        task.internal_data[_RESULT] = result
        return True

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        raise _ModelError("Service calls are not supported", {})


def _make_converter(runtime: _Runtime) -> type:
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
            compiled = runtime.processes.get(name) if isinstance(name, str) else None
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


def _merge_tokens(tokens: list[dict[str, Any]]) -> dict[str, Any]:
    if len(tokens) == 1:
        return tokens[0]
    history: dict[str, Any] = {}
    for token in tokens:
        history.update(token["history"])
    currents = [token["current"] for token in tokens]
    current: Any
    if all(isinstance(c, dict) for c in currents):
        current = {}
        for c in currents:
            current.update(c)
    else:
        current = currents[-1]
    return {"current": current, "history": history}


class _Runtime:
    """Everything built once per deployed document: specs, code tables, the script engine, the serializer."""

    def __init__(
        self,
        *,
        nodes: dict[str, FlowNodeDef],
        back: dict[str, str],
        conditions: dict[str, _Condition],
        scripts: dict[str, _Script],
    ) -> None:
        self.nodes = nodes
        self.back = back
        self.conditions = conditions
        self.scripts = scripts
        self.processes: dict[str, _CompiledProcess] = {}
        self.engine = _JsScriptEngine(self)
        config = dict(CAMUNDA_CONFIG)
        config[BpmnWorkflow] = _make_converter(self)
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))
        self.gateway_flows: dict[str, list[_Condition]] = {}
        for cond in conditions.values():
            self.gateway_flows.setdefault(cond.source_id, []).append(cond)

    def wire(self) -> None:
        """Hook the token bookkeeping into every spec's completion (events are not serialized: specs are ours)."""
        seen: set[int] = set()
        for compiled in self.processes.values():
            for spec in [compiled.spec, *compiled.subprocess_specs.values()]:
                if spec is None or id(spec) in seen:
                    continue
                seen.add(id(spec))
                for task_spec in spec.task_specs.values():
                    task_spec.completed_event.connect(self._on_completed)

    def original_id(self, spiff_id: str) -> str:
        return self.back.get(spiff_id, spiff_id)

    # -- tokens ------------------------------------------------------------------------------------------------

    def in_token(self, task: Any) -> dict[str, Any]:
        stored = task.internal_data.get(_IN)
        if stored is not None:
            return stored  # type: ignore[no-any-return]
        if isinstance(task.task_spec, UnstructuredJoin):
            return _merge_tokens([self.out_token(t.parent) for t in self._join_sources(task)])
        parent = task.parent
        if parent is None:
            workflow = task.workflow
            if workflow.parent_task_id is not None:
                return self.in_token(workflow.top_workflow.get_task_from_id(workflow.parent_task_id))
            return {"current": None, "history": {}}
        return self.out_token(parent)

    def out_token(self, task: Any) -> dict[str, Any]:
        stored = task.internal_data.get(_OUT)
        if stored is not None:
            return stored  # type: ignore[no-any-return]
        return self.in_token(task)

    @staticmethod
    def _join_sources(task: Any) -> list[Any]:
        spec = task.task_spec
        others = [
            t
            for t in task.workflow.tasks.values()
            if t.task_spec is spec
            and t is not task
            and t.has_state(TaskState.FINISHED_MASK)
            and not task.is_descendant_of(t)
            and t.parent is not None
        ]
        others.sort(key=lambda t: t.last_state_change)
        return [*others, task] if task.parent is not None else others

    def _on_completed(self, workflow: Any, task: Any) -> None:
        spec = task.task_spec
        token_in = self.in_token(task)
        if isinstance(spec, UnstructuredJoin):
            task.internal_data[_IN] = token_in
        if _RESULT in task.internal_data:
            current = task.internal_data.pop(_RESULT)
        elif isinstance(spec, SubWorkflowTask):
            current = self._subprocess_result(workflow, task, token_in)
        else:
            current = token_in["current"]
        history = token_in["history"]
        bpmn_id = getattr(spec, "bpmn_id", None)
        if bpmn_id is not None:
            history = {**history, self.original_id(bpmn_id): current}
        task.internal_data[_OUT] = {"current": current, "history": history}
        top = workflow.top_workflow
        seq = int(top.data.get(_WF_SEQ, 0)) + 1
        top.data[_WF_SEQ] = seq
        task.internal_data[_SEQ] = seq

    def _subprocess_result(self, workflow: Any, task: Any, token_in: dict[str, Any]) -> Any:
        sub = workflow.top_workflow.subprocesses.get(task.id)
        if sub is None:
            return token_in["current"]
        ends = [t for t in sub.tasks.values() if t.task_spec.name == "End" and _OUT in t.internal_data]
        return ends[-1].internal_data[_OUT]["current"] if ends else token_in["current"]


def _iter_tasks(workflow: Any) -> Iterator[Any]:
    yield from workflow.tasks.values()
    for sub in workflow.subprocesses.values():
        yield from sub.tasks.values()


class ProcessRunner:
    """One process instance: SpiffWorkflow's workflow plus ProcessCube's view of it.

    Not thread-safe: the caller serializes access to one instance (the store does, per instance id).
    """

    _USER_SPECS: ClassVar[tuple[type, ...]] = (UserTask, ManualTask)

    def __init__(self, definitions: ParsedDefinitions, process_model_id: str, workflow: Any) -> None:
        runtime = definitions._runtime
        assert runtime is not None
        self._definitions = definitions
        self._runtime = runtime
        self._process_model_id = process_model_id
        self._workflow = workflow
        workflow.script_engine = runtime.engine
        self._snapshot: InstanceSnapshot | None = None

    @staticmethod
    def _compiled(definitions: ParsedDefinitions, process_model_id: str) -> _CompiledProcess:
        runtime = definitions._runtime
        if runtime is None:
            raise ValueError("The definitions were not produced by parse_definitions()")
        compiled = runtime.processes.get(process_model_id)
        if compiled is None:
            raise ValueError(f"Unknown or not executable process model {process_model_id!r}")
        return compiled

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
        compiled = cls._compiled(definitions, process_model_id)
        model = definitions.process_model(process_model_id)
        start_ids = [e.id for e in model.start_events]
        if start_event_id is not None and start_event_id not in start_ids:
            raise ValueError(f"Process model {process_model_id!r} has no start event {start_event_id!r}")
        try:
            token = json.loads(json.dumps(initial_token))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The initial token is not JSON: {exc}") from exc
        runtime = definitions._runtime
        assert runtime is not None
        workflow = BpmnWorkflow(compiled.spec, compiled.subprocess_specs, script_engine=runtime.engine)
        workflow.task_tree.internal_data[_IN] = {"current": token, "history": {}}
        runner = cls(definitions, process_model_id, workflow)
        if len(start_ids) > 1:
            # Several none start events: run the one asked for, else the first in the document (our choice).
            runner._select_start_event(start_event_id or start_ids[0])
        runner._run()
        return runner

    @classmethod
    def load(cls, definitions: ParsedDefinitions, process_model_id: str, state: str) -> ProcessRunner:
        """Restore an instance from :meth:`serialize` against the same deployed definitions."""
        compiled = cls._compiled(definitions, process_model_id)
        runtime = definitions._runtime
        assert runtime is not None
        workflow = runtime.serializer.deserialize_json(state)
        if workflow.spec is not compiled.spec:
            raise ValueError(f"The stored state does not belong to process model {process_model_id!r}")
        return cls(definitions, process_model_id, workflow)

    @property
    def process_model_id(self) -> str:
        return self._process_model_id

    def serialize(self) -> str:
        """The instance state as a JSON string (without the spec: :meth:`load` takes it from the definitions)."""
        return str(self._runtime.serializer.serialize_json(self._workflow))

    # -- actions -----------------------------------------------------------------------------------------------

    def finish_user_task(self, flow_node_instance_id: str, result: dict[str, Any]) -> None:
        """Complete a suspended user task with ``result`` and run on; ``KeyError`` if there is no such task."""
        task = self._find_task(flow_node_instance_id)
        if (
            task is None
            or not isinstance(task.task_spec, self._USER_SPECS)
            or task.state != TaskState.READY
            or self._closed()
        ):
            raise KeyError(flow_node_instance_id)
        self._complete_with(task, result, run=True)

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

    def _complete_with(self, task: Any, result: Any, *, run: bool) -> None:
        try:
            value = json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The result is not JSON: {exc}") from exc
        self._snapshot = None
        task.internal_data[_RESULT] = value
        try:
            if run:
                task.run()
            else:
                task.complete()
        except Exception as exc:
            self._fail(exc)
            return
        self._run()

    def _select_start_event(self, start_event_id: str) -> None:
        # With several start events SpiffWorkflow waits on all of them; run the helper tasks up to there, then
        # cancel every start event but the chosen one.
        spiff_id = next((new for new, old in self._runtime.back.items() if old == start_event_id), start_event_id)
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
                task._ready()

    def _run(self) -> None:
        self._snapshot = None
        try:
            self._workflow.do_engine_steps()
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        workflow = self._workflow
        failed = [t for t in _iter_tasks(workflow) if t.state == TaskState.ERROR and _SEQ not in t.internal_data]
        task = failed[-1] if failed else getattr(exc, "task", None)
        details: dict[str, Any] = {}
        if isinstance(exc, _ModelError):
            message = exc.message
            details = exc.details
        else:
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            spec = getattr(task, "task_spec", None)
            bpmn_id = getattr(spec, "bpmn_id", None)
            if bpmn_id is not None and message.startswith("No conditions satisfied"):
                gateway = self._runtime.original_id(bpmn_id)
                flows = ", ".join(
                    f"{c.flow_id} (`{c.expression}`)" for c in self._runtime.gateway_flows.get(gateway, [])
                )
                message = f'No outgoing sequence flow of gateway "{gateway}" matched: {flows}'
        error: dict[str, Any] = {"message": message, **details}
        if task is not None and getattr(task.task_spec, "bpmn_id", None) is not None:
            error["flowNodeId"] = self._runtime.original_id(task.task_spec.bpmn_id)
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
            return not isinstance(task.task_spec, UnstructuredJoin)
        if state == TaskState.CANCELLED:
            return bool(task.internal_data.get(_TERMINATED))
        return False

    def _node_state(self, task: Any) -> FlowNodeState:
        state = task.state
        if state == TaskState.COMPLETED:
            return "finished"
        if state == TaskState.ERROR:
            return "error"
        if state == TaskState.CANCELLED:
            return "terminated"
        if state == TaskState.READY:
            return "suspended" if isinstance(task.task_spec, self._USER_SPECS) else "running"
        return "suspended"

    def _build_snapshot(self) -> InstanceSnapshot:
        runtime = self._runtime
        workflow = self._workflow
        error = workflow.data.get(_WF_ERROR)
        entries: list[tuple[tuple[int, int, int], FlowNodeInstanceSnapshot]] = []
        last_end: tuple[int, str, Any] | None = None
        for order, task in enumerate(_iter_tasks(workflow)):
            spec = task.task_spec
            bpmn_id = getattr(spec, "bpmn_id", None)
            if bpmn_id is None or not self._reached(task):
                continue
            node_id = runtime.original_id(bpmn_id)
            node = runtime.nodes.get(node_id)
            state = self._node_state(task)
            out = task.internal_data.get(_OUT)
            seq = int(task.internal_data.get(_SEQ, 1 << 60))
            parent_seq = int(task.parent.internal_data.get(_SEQ, 0)) if task.parent is not None else 0
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
                user_task_config = copy.deepcopy(node.user_task_config)
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
                        start_token=copy.deepcopy(runtime.in_token(task)["current"]),
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
