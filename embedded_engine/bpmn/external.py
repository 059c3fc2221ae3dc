"""External service tasks in the model and in a running instance: what a worker gets, and how its error lands.

A ``bpmn:serviceTask`` with ``camunda:type="external"`` waits for a worker (SpiffWorkflow leaves it ``STARTED``,
ProcessCube reports the flow node instance ``suspended``). What the engine needs to know about it is read here off
the document itself, the way ProcessCube's own model parser reads it (@5minds/processcube_engine_sdk 7.1.2,
``ServiceTaskParser.js``):

- ``camunda:topic``: the topic workers fetch it by;
- ``camunda:property name="payload"``: a JavaScript expression over ``token`` (and ``dataObjects``) whose value is
  the payload the worker gets; without it the payload is ``token.current``;
- ``camunda:property name="engine.isSingleTry" value="true"``: a lock that expires fails the task instead of
  releasing it to the next worker.

**Payloads are computed when the token arrives** (:func:`prepare`, called by the runner after every run), in the
sandbox like every other piece of model code, and kept in the task's internal data, so they survive a restart
unchanged. An expression that throws, does not compile or times out fails the instance, as a failing condition
does: the task never becomes fetchable with a payload nobody asked for (our choice).

``dataObjects`` (what 5Minds Studio writes, e.g. ``dataObjects.rechnungsdaten``): an object with one key per data
object reference (and its data object) that a flow node writes through a ``bpmn:dataOutputAssociation``; its value
is that node's result (its entry in ``token.history``). When several nodes write it, the one that finished last
in the token's history wins; a data object nothing has written yet is absent (``undefined``), not an error. The
engine keeps no other data object state (our choice; ProcessCube's own data object store is not part of its
documented API).

**Errors.** :func:`throw_error` is what ``PUT /external_tasks/{id}/error`` does to the instance: the task is marked
``error``; an error boundary event attached to it whose ``bpmn:error`` has the same ``errorCode`` catches it (one
without ``errorRef`` catches any code, as in BPMN), and the token leaves through that boundary event with the error
``{errorCode, errorMessage?, errorDetails?}`` as its result. Without such a boundary event the instance fails with
the error's message.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent, ServiceTask
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.util.task import TaskState

from embedded_engine import js

from .scripts import ModelError
from .tokens import set_result

if TYPE_CHECKING:
    from .compiled import CompiledDefinitions
    from .model import ParsedDefinitions
    from .runner import ProcessRunner

# lxml ships no type stubs: import it as an untyped module (as parsing.py does).
etree: Any = importlib.import_module("lxml.etree")

__all__ = [
    "ExternalTaskDef",
    "ExternalTaskModel",
    "external_task_model",
    "payload_of",
    "prepare",
    "throw_error",
]

_BPMN: Final = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
_CAMUNDA: Final = "{http://camunda.org/schema/1.0/bpmn}"
_PAYLOAD: Final = "pc_external_payload"  # task.internal_data: {"payload": value} once computed


@dataclass(frozen=True)
class ExternalTaskDef:
    """One external service task as modelled (ids are the model's own)."""

    flow_node_id: str
    topic: str
    payload_expression: str | None
    is_single_try: bool


@dataclass(frozen=True)
class ExternalTaskModel:
    """The external service tasks of one document, and who writes which data object."""

    tasks: Mapping[str, ExternalTaskDef]
    data_object_writers: Mapping[str, tuple[str, ...]]  # data object (reference) id -> flow node ids writing it

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted({task.topic for task in self.tasks.values()}))


_models: weakref.WeakKeyDictionary[CompiledDefinitions, ExternalTaskModel] = weakref.WeakKeyDictionary()


def external_task_model(definitions: ParsedDefinitions) -> ExternalTaskModel:
    """The external tasks of a parsed document (read once per compiled document, then cached)."""
    compiled = definitions.compiled
    if compiled is not None:
        cached = _models.get(compiled)
        if cached is not None:
            return cached
    model = _read_model(definitions.xml)
    if compiled is not None:
        _models[compiled] = model
    return model


def _read_model(xml: str) -> ExternalTaskModel:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(xml.encode("utf-8"), parser)
    tasks: dict[str, ExternalTaskDef] = {}
    for element in root.iter(_BPMN + "serviceTask"):
        if element.get(_CAMUNDA + "type") != "external" or not element.get("id"):
            continue
        properties: dict[str, str] = {}
        for prop in element.iter(_CAMUNDA + "property"):
            name = prop.get("name")
            if name and name not in properties:
                properties[name] = prop.get("value") or ""
        expression = properties.get("payload")
        tasks[str(element.get("id"))] = ExternalTaskDef(
            flow_node_id=str(element.get("id")),
            topic=element.get(_CAMUNDA + "topic") or "",
            payload_expression=expression if expression and expression.strip() else None,
            is_single_try=properties.get("engine.isSingleTry") == "true",
        )
    aliases = {
        str(ref.get("id")): str(ref.get("dataObjectRef"))
        for ref in root.iter(_BPMN + "dataObjectReference")
        if ref.get("id") and ref.get("dataObjectRef")
    }
    writers: dict[str, list[str]] = {}
    for association in root.iter(_BPMN + "dataOutputAssociation"):
        node = association.getparent()
        target = association.find(_BPMN + "targetRef")
        if node is None or not node.get("id") or target is None or not (target.text or "").strip():
            continue
        target_id = (target.text or "").strip()
        for key in (target_id, aliases.get(target_id)):
            if key:
                writers.setdefault(key, []).append(str(node.get("id")))
    return ExternalTaskModel(tasks=tasks, data_object_writers={k: tuple(v) for k, v in writers.items()})


def _data_objects(model: ExternalTaskModel, history: Mapping[str, Any]) -> dict[str, Any]:
    order = {node_id: index for index, node_id in enumerate(history)}
    objects: dict[str, Any] = {}
    for object_id, node_ids in model.data_object_writers.items():
        written = [node_id for node_id in node_ids if node_id in history]
        if written:
            objects[object_id] = history[max(written, key=lambda node_id: order[node_id])]
    return objects


def evaluate_payload(definition: ExternalTaskDef, token: Mapping[str, Any], model: ExternalTaskModel) -> Any:
    """The payload a worker gets for this task entered with ``token``; :class:`ModelError` if the expression fails."""
    if definition.payload_expression is None:
        return token.get("current")
    expression = definition.payload_expression
    scope = {"token": token, "dataObjects": _data_objects(model, token.get("history") or {})}
    prelude = "const dataObjects = token.dataObjects; token = token.token;\n"
    try:
        try:
            return js.run_script(prelude + "return (" + expression.rstrip().rstrip(";") + "\n);", scope)
        except js.JsEvaluationError as exc:
            if not exc.message.startswith("SyntaxError"):
                raise
            return js.run_script(prelude + expression, scope)  # a function body with its own return
    except js.JsEvaluationError as exc:
        raise ModelError(
            f'Payload of external task "{definition.flow_node_id}" failed: `{expression}`: {exc.message}',
            {"expression": expression},
        ) from exc


def _external_tasks(runner: ProcessRunner) -> list[tuple[Any, ExternalTaskDef]]:
    model = external_task_model(runner._definitions)
    if not model.tasks:
        return []
    found = []
    for task in runner._workflow.get_tasks(state=TaskState.STARTED):
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if bpmn_id is None or not isinstance(task.task_spec, ServiceTask):
            continue
        definition = model.tasks.get(runner._compiled.original_id(bpmn_id))
        if definition is not None:
            found.append((task, definition))
    return found


def prepare(runner: ProcessRunner) -> None:
    """Compute the payload of every external task the token has just reached; a failing one fails the instance."""
    if runner._closed():
        return
    model = external_task_model(runner._definitions)
    for task, definition in _external_tasks(runner):
        if _PAYLOAD in task.internal_data:
            continue
        token = runner._compiled.tokens.in_token(task)
        try:
            payload = evaluate_payload(definition, token, model)
        except ModelError as exc:
            task.error()
            runner._fail(exc)
            return
        task.internal_data[_PAYLOAD] = {"payload": payload}


def _waiting(runner: ProcessRunner, flow_node_instance_id: str) -> tuple[Any, ExternalTaskDef] | None:
    task = runner._find_task(flow_node_instance_id)
    if task is None or task.state != TaskState.STARTED or runner._closed():
        return None
    bpmn_id = getattr(task.task_spec, "bpmn_id", None)
    if bpmn_id is None or not isinstance(task.task_spec, ServiceTask):
        return None
    definition = external_task_model(runner._definitions).tasks.get(runner._compiled.original_id(bpmn_id))
    return None if definition is None else (task, definition)


def payload_of(runner: ProcessRunner, flow_node_instance_id: str) -> tuple[ExternalTaskDef, Any] | None:
    """The definition and payload of the waiting external task with this id; None if it is not one."""
    found = _waiting(runner, flow_node_instance_id)
    if found is None:
        return None
    task, definition = found
    if _PAYLOAD not in task.internal_data:  # reached before payloads were kept: compute it now
        token = runner._compiled.tokens.in_token(task)
        try:
            payload = evaluate_payload(definition, token, external_task_model(runner._definitions))
        except ModelError:
            payload = token.get("current")
        task.internal_data[_PAYLOAD] = {"payload": payload}
    return definition, task.internal_data[_PAYLOAD]["payload"]


def _boundary_catcher(task: Any, error_code: str) -> Any:
    """The waiting error boundary event of ``task`` that catches ``error_code`` (an exact code before a catch-all)."""
    parent = task.parent
    if parent is None:
        return None
    candidates = [
        sibling
        for sibling in parent.children
        if sibling is not task
        and sibling.state == TaskState.WAITING
        and isinstance(sibling.task_spec, BoundaryEvent)
        and isinstance(sibling.task_spec.event_definition, ErrorEventDefinition)
    ]
    exact = [c for c in candidates if c.task_spec.event_definition.code == error_code]
    catch_all = [c for c in candidates if c.task_spec.event_definition.code is None]
    return (exact or catch_all or [None])[0]


def throw_error(
    runner: ProcessRunner, flow_node_instance_id: str, error_code: str, message: str | None, details: Any
) -> bool:
    """A worker's error for the waiting external task: True if a boundary event caught it, False if the instance
    failed. ``KeyError`` if there is no such waiting task."""
    found = _waiting(runner, flow_node_instance_id)
    if found is None:
        raise KeyError(flow_node_instance_id)
    task = found[0]
    runner._snapshot = None
    error: dict[str, Any] = {"errorCode": error_code}
    if message is not None:
        error["errorMessage"] = message
    if details is not None:
        error["errorDetails"] = details
    catcher = _boundary_catcher(task, error_code)
    task.error()
    if catcher is None:
        extra = {key: value for key, value in error.items() if key != "errorMessage"}
        runner._fail(ModelError(message or error_code, extra))
        return False
    set_result(catcher, error)
    definition = catcher.task_spec.event_definition
    catcher.task_spec.catch(catcher, BpmnEvent(ErrorEventDefinition(definition.name, code=error_code), payload={}))
    catcher.task_spec._update(catcher)
    runner._run()
    return True
