"""Parsing a ProcessCube (5Minds Studio) BPMN document: XML in, :class:`ParsedDefinitions` out, ready to run.

ProcessCube's dialect: forms from ``camunda:formData``, lanes from ``bpmn:laneSet``, JavaScript conditions on
sequence flows and JavaScript script tasks, external service tasks that wait for a worker. A document that cannot
run (malformed XML, a dangling reference, no executable process, a structure SpiffWorkflow refuses) raises
:class:`DeployError` with a message for the modeller. Otherwise SpiffWorkflow compiles every executable process
once, after the document is rewritten for it:

- **Data wiring is dropped.** Data associations and io specifications would make SpiffWorkflow move (and demand)
  Python task data; ProcessCube's data lives in the token (:mod:`.tokens`).
- **Reserved ids are renamed.** SpiffWorkflow names its own helper specs ``Start``, ``End``, ``Root``,
  ``<process>.EndJoin``, ``StartEventSplit``, ``StartEventJoin``, ``<id>.BoundaryEventSplit``,
  ``<id>.BoundaryEventJoin`` and ``<id> [child]``, and a process's spec after the process. A flow node with such an
  id (5Minds Studio users do name start events ``Start``) is renamed transparently before SpiffWorkflow parses the
  document; :attr:`CompiledDefinitions.original_ids` maps it back everywhere the BPMN layer answers.
- **Code is replaced by keys.** Every condition and script becomes an opaque key, the JavaScript goes into the
  tables of the script engine (:mod:`.scripts`): no Python ever sees model code. A sequence flow without a
  condition out of a branching gateway gets an always-true one, as ProcessCube takes it.
- **Code is replaced by keys, timers too.** A timer's ``timeDuration``/``timeDate``/``timeCycle`` becomes a key as
  well; :mod:`.scripts` resolves it to the literal ISO 8601 text, or evaluates it as JavaScript over the token when
  it is not one.
- **What cannot run is refused.** Complex gateways, ad-hoc and transaction subprocesses, business rule tasks,
  conditional, compensation and link events, loops and multi-instance activities, timer start events (cronjobs),
  service tasks that are not external, call activities to other documents: a :class:`DeployError` that names the
  element, at deploy, never an instance that stalls later.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Final

from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser

from .compiled import CompiledDefinitions, CompiledProcess
from .model import EnumValue, FlowNodeDef, FormField, ParsedDefinitions, ProcessModelDef
from .scripts import Condition, Script, TimerExpression, condition_key, script_key, timer_key
from .user_task_config import config_model

# lxml ships no type stubs (and pyproject does not list it for mypy): import it as an untyped module.
etree: Any = importlib.import_module("lxml.etree")

__all__ = ["BPMN_NS", "CAMUNDA_NS", "DeployError", "parse_definitions"]

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


class DeployError(Exception):
    """A BPMN document that cannot be deployed; ``line`` is the XML parser's line for malformed XML."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


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


def _camunda_properties(node: Any) -> dict[str, str]:
    """The node's own ``extensionElements/camunda:properties/camunda:property`` entries (name -> value); the first
    of a name wins, as the SDK's ``findCamundaExtensionPropertyByName`` finds it. Properties inside form fields are
    not the node's."""
    properties: dict[str, str] = {}
    for extensions in node.findall(_B + "extensionElements"):
        for group in extensions.findall(_C + "properties"):
            for prop in group.findall(_C + "property"):
                name, value = prop.get("name"), prop.get("value")
                if name and value is not None and name not in properties:
                    properties[name] = str(value)
    return properties


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
        # userTaskConfigModel: form fields and camunda:property entries (not bpmn:documentation, see
        # user_task_config); the engine evaluates its expressions when the token arrives.
        form_fields = _form_fields(node)
        config = config_model(form_fields, _camunda_properties(node))
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
    ProcessCube's data lives in the token, which we keep ourselves. Studio draws such associations freely (the
    invoicing sample of 5minds/ProcessCube.AppTemplate writes a task's output to a data object), so they must not
    break a run.
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


def _refuse_unsupported(root: Any) -> None:
    """Refuse at deploy what the embedded engine cannot run, naming the element; never accept it and stall later."""

    def refuse(el: Any, why: str) -> None:
        name = f' "{el.get("name")}"' if el.get("name") else ""
        raise DeployError(f'"{el.get("id")}"{name} ({_bpmn_type(_local(el.tag))}): {why}')

    unsupported_nodes = {
        "complexGateway": "complex gateways are not supported by the embedded engine",
        "adHocSubProcess": "ad-hoc subprocesses are not supported by the embedded engine",
        "businessRuleTask": "business rule tasks (DMN) are not supported by the embedded engine",
        "transaction": "transaction subprocesses are not supported by the embedded engine",
    }
    unsupported_events = {
        "conditionalEventDefinition": "conditional events are not supported by the embedded engine",
        "compensateEventDefinition": "compensation events are not supported by the embedded engine",
        "linkEventDefinition": "link events are not supported by the embedded engine",
    }
    called = {str(p.get("id")) for p in root.findall(_B + "process")}
    for el in root.iter():
        if not isinstance(el.tag, str) or etree.QName(el.tag).namespace != BPMN_NS:
            continue
        local = _local(el.tag)
        if local in unsupported_nodes:
            refuse(el, unsupported_nodes[local])
        if local in _FLOW_NODE_TAGS:
            for child in el:
                child_local = _local(child.tag)
                if child_local in unsupported_events:
                    refuse(el, unsupported_events[child_local])
                if child_local in ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics"):
                    refuse(el, "loops and multi-instance activities are not supported by the embedded engine")
        if local == "startEvent" and el.find(_B + "timerEventDefinition") is not None:
            parent = el.getparent()
            if parent is not None and _local(parent.tag) == "process":
                refuse(el, "timer start events (ProcessCube cronjobs) are not supported by the embedded engine")
        if local == "serviceTask" and el.get(_C + "type") != "external":
            refuse(el, 'only external service tasks (camunda:type="external" with a camunda:topic) can run')
        if local == "serviceTask" and not el.get(_C + "topic"):
            refuse(el, "an external service task needs a camunda:topic")
        if local == "callActivity" and el.get("calledElement") not in called:
            refuse(el, f'calls "{el.get("calledElement")}", which is not a process of this document')
        if local == "timerEventDefinition":
            owner = el.getparent()
            expressions = [c for c in el if _local(c.tag) in ("timeDuration", "timeDate", "timeCycle")]
            if len(expressions) != 1 or not (expressions[0].text or "").strip():
                refuse(owner, "a timer needs exactly one of timeDuration, timeDate or timeCycle with a value")
        if local in ("messageEventDefinition", "signalEventDefinition"):
            kind = "messageRef" if local == "messageEventDefinition" else "signalRef"
            ref = el.get(kind)
            target = (
                root.find(f".//{_B}{'message' if kind == 'messageRef' else 'signal'}[@id='{ref}']") if ref else None
            )
            if target is None or not target.get("name"):
                refuse(
                    el.getparent(), f"the {local[: -len('EventDefinition')]} event needs a {kind} to a named element"
                )


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


def _rewrite_code(
    root: Any, original_ids: dict[str, str], timers: dict[str, TimerExpression]
) -> tuple[dict[str, Condition], dict[str, Script]]:
    """Replace every condition, script and timer expression by an opaque key SpiffWorkflow passes back to our
    script engine; the timer expressions go into ``timers``."""
    nodes = {el.get("id"): el for el in root.iter() if el.get("id") is not None}
    outgoing: dict[str, list[Any]] = {}
    for flow in root.iter(_B + "sequenceFlow"):
        outgoing.setdefault(str(flow.get("sourceRef")), []).append(flow)
    conditions: dict[str, Condition] = {}
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
        key = condition_key(flow_id)
        conditions[key] = Condition(
            flow_id=flow_id, source_id=original_ids.get(source_id, source_id), expression=cond.text or ""
        )
        for child in list(cond):
            cond.remove(child)
        cond.text = key
    scripts: dict[str, Script] = {}
    for definition in root.iter(_B + "timerEventDefinition"):
        owner = definition.getparent()
        owner_id = str(owner.get("id"))
        for expression in definition:
            if _local(expression.tag) in ("timeDuration", "timeDate", "timeCycle"):
                key = timer_key(owner_id)
                timers[key] = TimerExpression(node_id=original_ids.get(owner_id, owner_id), text=expression.text or "")
                expression.text = key
    for task in root.iter(_B + "scriptTask"):
        task_id = str(task.get("id"))
        script = task.find(_B + "script")
        if script is None:
            script = etree.SubElement(task, _B + "script")
        key = script_key(task_id)
        scripts[key] = Script(task_id=original_ids.get(task_id, task_id), body=script.text or "")
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

    _refuse_unsupported(root)
    process_ids = {str(p.get("id")) for p in processes}
    _strip_data_wiring(root)
    original_ids = _rename_reserved(root, ids, process_ids)
    timers: dict[str, TimerExpression] = {}
    conditions, scripts = _rewrite_code(root, original_ids, timers)
    nodes_by_id = {n.id: n for m in models for n in m.flow_nodes}

    spiff_parser = CamundaParser()
    compiled_processes: dict[str, CompiledProcess] = {}
    try:
        spiff_parser.add_bpmn_xml(root, filename=definitions_id)
        for model in executable:
            pid = model.process_model_id
            spec = spiff_parser.get_spec(pid)
            subprocess_specs = spiff_parser.get_subprocess_specs(pid)
            compiled_processes[pid] = CompiledProcess(spec=spec, subprocess_specs=subprocess_specs)
    except DeployError:
        raise
    except ValidationException as exc:
        node_id = getattr(exc, "id", "") or ""
        node_id = original_ids.get(node_id, node_id)
        where = f' at "{node_id}"' if node_id else ""
        raise DeployError(f"Invalid BPMN{where}: {exc.args[0] if exc.args else exc}") from exc
    except Exception as exc:
        raise DeployError(f"Invalid BPMN: {exc}") from exc
    compiled = CompiledDefinitions(
        nodes=nodes_by_id,
        original_ids=original_ids,
        conditions=conditions,
        scripts=scripts,
        timers=timers,
        processes=compiled_processes,
    )
    return ParsedDefinitions(definitions_id=definitions_id, xml=xml, process_models=tuple(models), compiled=compiled)
