"""A user task's configuration: as modelled (``userTaskConfigModel``) and as the engine answers it (``userTaskConfig``).

What the real engine does, read off the official SDK (``@5minds/processcube_engine_sdk`` 7.1.2: its BPMN parser
``UserTaskParser`` and the ``UserTaskInstance`` type) and a captured engine answer (5minds/
node-red-dashboard-2-processcube-dynamic-form, ``ui/components/fields.json``):

- **The model.** ``formFields`` from ``camunda:formData``; ``customForm``, ``description`` and ``finishedMessage``
  from the task's ``camunda:property`` entries of those names, and ``assignedUserIds`` from the property
  ``engine.assignUserIds`` (a string in the model). The task's ``bpmn:documentation`` is *not* its description:
  the SDK's parser reads the description from the property alone, so a task with only documentation has none.
- **The evaluated config.** When the token reaches the task, every ``${...}`` in its texts is evaluated against
  the token the task was entered with (``token.current``, ``token.history.<flowNodeId>``): form fields' ``label``,
  ``defaultValue`` and ``customForm``, enum values' ``name``, and the task's ``customForm``, ``description`` and
  ``finishedMessage``. A text is a JavaScript template literal: the captured answer has ``"defaultValue":
  "undefined"`` for a modelled ``"${token.current.sample}"`` on an empty token, exactly what
  ``\\`${token.current.sample}\\``` gives. The result is always a string; the rest of the text stays as written.
- **assignedUserIds** is a list of user ids in the evaluated config (``Array<string>`` in the SDK's
  ``UserTaskConfig``). Our reading of the string (the SDK does not show the engine's): a text that is one
  ``${expression}`` is evaluated as JavaScript and its value taken as the list (an array; a string is split at
  commas); any other text (after evaluating the templates in it) is a comma-separated list of user ids.

Expressions run in the JavaScript sandbox (:func:`embedded_engine.js.evaluate_expression`), never as Python, once
per task instance: the result is cached by the task's instance id (its start token never changes), so a snapshot
taken again costs nothing. An expression that fails (throws, does not parse, times out) never fails the instance
(our choice; the real engine's behaviour is not documented): its text stays as modelled, raw ``${...}`` included,
and the failure is logged; an ``assignedUserIds`` that cannot be evaluated is left out.

The engine stores a task's evaluated config; when it differs from the model, the model rides along in it under
:data:`MODEL_KEY` (:func:`stored_config`), and :func:`split_stored_config` takes them apart again for the answer.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cachetools import LRUCache

from embedded_engine import js

from .model import FormField

__all__ = [
    "MODEL_KEY",
    "PROPERTY_KEYS",
    "config_model",
    "evaluate_config",
    "split_stored_config",
    "stored_config",
]

log = logging.getLogger("embedded_engine.user_task_config")

#: ``camunda:property`` name -> the config's key.
PROPERTY_KEYS: Final[Mapping[str, str]] = {
    "customForm": "customForm",
    "description": "description",
    "finishedMessage": "finishedMessage",
    "engine.assignUserIds": "assignedUserIds",
}
#: Where a stored config keeps the model when evaluating changed something.
MODEL_KEY: Final = "userTaskConfigModel"

_TASK_TEXTS: Final = ("customForm", "description", "finishedMessage")
_FIELD_TEXTS: Final = ("label", "defaultValue", "customForm")
_CACHE: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=10_000)


def config_model(form_fields: Sequence[FormField], properties: Mapping[str, str]) -> dict[str, Any]:
    """The config as modelled (``userTaskConfigModel``): form fields and the ``camunda:property`` entries."""
    model: dict[str, Any] = {"formFields": [field.to_json() for field in form_fields]}
    for name, key in PROPERTY_KEYS.items():
        if name in properties:
            model[key] = properties[name]
    return model


def stored_config(model: Mapping[str, Any], token: Any, *, task_instance_id: str) -> dict[str, Any]:
    """What the engine stores for a task instance: the evaluated config, with the model under :data:`MODEL_KEY`
    when the two differ. Evaluated once per ``task_instance_id``."""
    cached = _CACHE.get(task_instance_id)
    if cached is None:
        config, failed = _evaluate(model, token, task_instance_id)
        cached = dict(config)
        if config != model:
            cached[MODEL_KEY] = copy.deepcopy(dict(model))
        if not failed:  # a failure may be passing (a worker lost): the next snapshot tries again
            _CACHE[task_instance_id] = cached
    return copy.deepcopy(cached)


def split_stored_config(stored: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(userTaskConfig, userTaskConfigModel)`` of a stored config (``{"formFields": []}`` for none)."""
    if stored is None:
        return {"formFields": []}, {"formFields": []}
    config = dict(stored)
    model = config.pop(MODEL_KEY, None)
    if not isinstance(model, dict):
        model = copy.deepcopy(config)
    return config, model


def evaluate_config(model: Mapping[str, Any], token: Any, *, where: str = "") -> dict[str, Any]:
    """The config as the engine answers it: every template in ``model`` evaluated against ``token``."""
    return _evaluate(model, token, where)[0]


def _evaluate(model: Mapping[str, Any], token: Any, where: str) -> tuple[dict[str, Any], bool]:
    """The evaluated config, and whether an expression failed."""
    config: dict[str, Any] = copy.deepcopy(dict(model))
    # (container, key) of each text with an expression in it
    slots: list[tuple[dict[str, Any], str]] = [(config, key) for key in _TASK_TEXTS if _is_template(config.get(key))]
    for field in config.get("formFields") or ():
        if not isinstance(field, dict):
            continue
        slots.extend((field, key) for key in _FIELD_TEXTS if _is_template(field.get(key)))
        for value in field.get("enumValues") or ():
            if isinstance(value, dict) and _is_template(value.get("name")):
                slots.append((value, "name"))
    sources = [_template_source(str(container[key])) for container, key in slots]
    assigned = config.get("assignedUserIds")
    assigned_source: str | None = None
    if isinstance(assigned, str):
        whole = _whole_expression(assigned)
        if whole is not None:
            assigned_source = f"({whole})"
        elif _is_template(assigned):
            assigned_source = _template_source(assigned)
    if assigned_source is not None:
        sources.append(assigned_source)
    values = _evaluate_all(sources, token, where)
    for (container, key), value in zip(slots, values, strict=False):
        if isinstance(value, str):
            container[key] = value
    if isinstance(assigned, str):
        assigned_value: Any = assigned if assigned_source is None else values[-1]
        user_ids = _user_ids(assigned_value)
        if user_ids is None:
            config.pop("assignedUserIds")
        else:
            config["assignedUserIds"] = user_ids
    return config, any(isinstance(value, _Failed) for value in values)


# -- evaluating ----------------------------------------------------------------------------------------------


class _Failed:
    """An expression that could not be evaluated (its text stays as modelled)."""


_FAILED: Final = _Failed()


def _evaluate_all(sources: list[str], token: Any, where: str) -> list[Any]:
    """Each source's value; :data:`_FAILED` for one that fails. One sandbox call for all, one each on failure."""
    if not sources:
        return []
    try:
        values = js.evaluate_expression("[" + ", ".join(sources) + "]", token)
        if isinstance(values, list) and len(values) == len(sources):
            return values
    except js.JsEvaluationError:
        pass
    results: list[Any] = []
    for source in sources:
        try:
            results.append(js.evaluate_expression(source, token))
        except js.JsEvaluationError as exc:
            log.warning("user task %s: the expression %s failed, its text stays as modelled: %s", where, source, exc)
            results.append(_FAILED)
    return results


def _user_ids(value: Any) -> list[str] | None:
    if isinstance(value, _Failed) or value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value if item is not None]
    return [json.dumps(value)]


# -- templates -----------------------------------------------------------------------------------------------


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _expression_end(text: str, start: int) -> int | None:
    """The index of the ``}`` closing the expression that starts at ``start`` (after ``${``), or None."""
    depth = 0
    quote: str | None = None
    index = start
    while index < len(text):
        char = text[index]
        if quote is not None:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return None


def _parts(text: str) -> list[tuple[bool, str]]:
    """The text as ``(is_expression, part)``; a ``${`` without its ``}`` is text."""
    parts: list[tuple[bool, str]] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("${", index):
            end = _expression_end(text, index + 2)
            if end is not None:
                if literal:
                    parts.append((False, "".join(literal)))
                    literal = []
                parts.append((True, text[index + 2 : end]))
                index = end + 1
                continue
        literal.append(text[index])
        index += 1
    if literal:
        parts.append((False, "".join(literal)))
    return parts


def _template_source(text: str) -> str:
    """The JavaScript template literal for ``text``: its ``${...}`` are evaluated, everything else kept as is."""
    out: list[str] = []
    for is_expression, part in _parts(text):
        if is_expression:
            out.append("${" + part + "}")
        else:
            out.append(part.replace("\\", "\\\\").replace("`", "\\`").replace("$", "\\$"))
    return "`" + "".join(out) + "`"


def _whole_expression(text: str) -> str | None:
    """The expression of a text that is exactly one ``${expression}`` (surrounding blanks allowed), else None."""
    parts = _parts(text.strip())
    if len(parts) == 1 and parts[0][0]:
        return parts[0][1]
    return None
