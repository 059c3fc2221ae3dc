"""The script engine handed to SpiffWorkflow: model code runs as JavaScript in the sandbox, never as Python.

ProcessCube models carry JavaScript: conditions on sequence flows (``token.current.approved === true``) and the
bodies of script tasks. SpiffWorkflow would evaluate both as Python. So before SpiffWorkflow ever sees a document,
parsing replaces every condition and script by an opaque key (:func:`condition_key`, :func:`script_key`) and keeps
the real code in the tables :class:`JsScriptEngine` is built with. The engine only resolves those keys and runs
the JavaScript through :mod:`embedded_engine.js`, with the node's entry token as ``token``; anything else
SpiffWorkflow might ask it (timer expressions, multi-instance cardinalities, ...) is refused with an error, and its
Python environment refuses everything.

A failure of the model's code is a :class:`ModelError`; the runner turns it into the instance's ``"error"`` state,
with the message naming the sequence flow and the expression, or the script task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from embedded_engine import js

from .tokens import TokenKeeper, set_result

__all__ = [
    "Condition",
    "JsScriptEngine",
    "ModelError",
    "Script",
    "TimerExpression",
    "condition_key",
    "script_key",
    "timer_key",
]

_CONDITION_KEY: Final = "pc-condition:"
_SCRIPT_KEY: Final = "pc-script:"
_TIMER_KEY: Final = "pc-timer:"
_MIN_CYCLE_SECONDS: Final = 1
# ISO 8601 as timers take it: a duration (P…), a repetition (R…/…), or a date and time (2026-11-25T10:00:00Z).
_ISO_TIMER: Final = re.compile(r"^(P[0-9TYMWDHS.,]+|R\d*/.+|\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?)$")


def condition_key(flow_id: str) -> str:
    """What stands in the document for the condition of sequence flow ``flow_id``."""
    return _CONDITION_KEY + flow_id


def timer_key(node_id: str) -> str:
    """What stands in the document for the timer expression of event ``node_id``."""
    return _TIMER_KEY + node_id


def script_key(task_id: str) -> str:
    """What stands in the document for the script of script task ``task_id``."""
    return _SCRIPT_KEY + task_id


@dataclass(frozen=True)
class Condition:
    """A sequence flow's condition as modelled; ``source_id`` is the gateway's id in the model."""

    flow_id: str
    source_id: str
    expression: str


@dataclass(frozen=True)
class Script:
    """A script task's JavaScript body; ``task_id`` is the task's id in the model."""

    task_id: str
    body: str


@dataclass(frozen=True)
class TimerExpression:
    """A timer's value as modelled: literal ISO 8601, or JavaScript over the token that yields it."""

    node_id: str
    text: str

    def resolve(self, token: Any) -> str:
        return self._checked(self._value(token))

    def _checked(self, value: str) -> str:
        """A cycle must leave time between its rounds: ``R/PT0S`` would fire without end, as fast as it can."""
        if value.upper().startswith("R"):
            try:
                _cycles, _start, duration = TimerEventDefinition.parse_iso_recurring_interval(value)
            except Exception as exc:
                raise ModelError(f'Timer of "{self.node_id}": `{value}` is no ISO 8601 cycle', {}) from exc
            if duration.total_seconds() < _MIN_CYCLE_SECONDS:
                raise ModelError(
                    f'Timer of "{self.node_id}": the cycle `{value}` repeats faster than every {_MIN_CYCLE_SECONDS} s',
                    {"expression": self.text},
                )
        return value

    def _value(self, token: Any) -> str:
        text = self.text.strip()
        if _ISO_TIMER.match(text):
            return text
        try:
            value = js.evaluate_expression(text, token)
        except js.JsEvaluationError as exc:
            raise ModelError(
                f'Timer of "{self.node_id}" failed: `{text}`: {exc.message}', {"expression": text}
            ) from exc
        if not isinstance(value, str) or not _ISO_TIMER.match(value.strip()):
            raise ModelError(
                f'Timer of "{self.node_id}": `{text}` gave {value!r}, not an ISO 8601 duration, date or cycle',
                {"expression": text},
            )
        return value.strip()


class ModelError(Exception):
    """A runtime failure of the model's own content; becomes the instance's error (``details`` join its JSON)."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class _NoPythonEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """SpiffWorkflow's Python environment, disabled: some of its code paths call it directly."""

    def evaluate(self, expression: Any, context: Any, external_context: Any = None) -> Any:
        raise ModelError("Expressions outside of sequence-flow conditions are not supported", {})

    def execute(self, script: Any, context: Any, external_context: Any = None) -> Any:
        raise ModelError("Scripts outside of script tasks are not supported", {})

    def call_service(self, context: Any, **kwargs: Any) -> Any:
        raise ModelError("Service calls are not supported", {})


class JsScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """SpiffWorkflow's script engine, routed to the JavaScript sandbox; it never evaluates Python.

    ``conditions`` and ``scripts`` are keyed by :func:`condition_key` and :func:`script_key`.
    """

    def __init__(
        self,
        conditions: Mapping[str, Condition],
        scripts: Mapping[str, Script],
        tokens: TokenKeeper,
        timers: Mapping[str, TimerExpression] | None = None,
    ) -> None:
        super().__init__(environment=_NoPythonEnvironment())
        self._conditions = conditions
        self._scripts = scripts
        self._tokens = tokens
        self._timers = timers or {}

    def validate(self, expression: Any) -> None:
        raise ModelError("Expressions outside of sequence-flow conditions are not supported", {})

    def evaluate(self, task: Any, expression: Any, external_context: Any = None) -> Any:
        if expression is None:
            # A message throw event without an expression (5Minds Studio writes none): it sends token.current.
            return self._tokens.in_token(task)["current"]
        timer = self._timers.get(expression) if isinstance(expression, str) else None
        if timer is not None:
            return timer.resolve(self._tokens.in_token(task))
        cond = self._conditions.get(expression) if isinstance(expression, str) else None
        if cond is None:
            raise ModelError(
                "The embedded engine does not support this expression (only sequence-flow conditions are "
                f"evaluated): {str(expression)[:200]!r}",
                {},
            )
        token = self._tokens.in_token(task)
        try:
            return js.evaluate_condition(cond.expression, token)
        except js.JsEvaluationError as exc:
            raise ModelError(
                f'Condition of sequence flow "{cond.flow_id}" failed: `{cond.expression}`: {exc.message}',
                {"sequenceFlowId": cond.flow_id, "expression": cond.expression},
            ) from exc

    def execute(self, task: Any, script: Any, external_context: Any = None) -> Any:
        entry = self._scripts.get(script) if isinstance(script, str) else None
        if entry is None:
            raise ModelError("The embedded engine only runs the scripts of script tasks", {})
        token = self._tokens.in_token(task)
        try:
            result = js.run_script(entry.body, token)
        except js.JsEvaluationError as exc:
            raise ModelError(f'Script task "{entry.task_id}" failed: {exc.message}', {"script": entry.body}) from exc
        set_result(task, result)
        return True

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        raise ModelError("Service calls are not supported", {})
