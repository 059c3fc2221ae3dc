"""JSON request bodies of the REST face: decoded strictly and checked against the contract's schemas.

A body that is not JSON, not UTF-8, nested deeper than ``MAX_DOCUMENT_DEPTH``, or does not fit its schema
(missing or unknown members, wrong types) or the core's limits (:mod:`gateway.core.limits`: task ids, names, a
``result`` nested too deep or too large) is a ``BAD_REQUEST`` problem whose ``problems`` name each wrong part by
JSON Pointer (``/items/2/id``), the names the service gives the same problems in GraphQL. Whether a ``result``
fits the task's form, including whether it is an object at all, is the service's rule (``INVALID_TASK_RESULT``,
422), the same one GraphQL applies, so it is not checked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core import limits
from ..core.domain import FieldProblem
from ..core.results import json_kind
from ..core.tokens import MISSING
from .problems import RequestInvalid


def decode(raw: bytes, *, required: bool) -> Any:
    """The body's JSON value; MISSING for an empty optional body."""
    if not raw.strip():
        if required:
            raise RequestInvalid([FieldProblem("", "This route needs a JSON body (Content-Type: application/json).")])
        return MISSING
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestInvalid([FieldProblem("", f"The body is not UTF-8 text (byte {exc.start}).")]) from None
    try:
        return limits.decode_json(text, max_depth=limits.MAX_DOCUMENT_DEPTH)
    except ValueError as exc:
        raise RequestInvalid([FieldProblem("", f"The body is not valid JSON: {exc}.")]) from None


class _Checker:
    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def add(self, pointer: str, message: str) -> None:
        self.problems.append(FieldProblem(pointer, f"{pointer or 'The body'} {message}"))

    def done(self) -> None:
        if self.problems:
            raise RequestInvalid(self.problems)

    def object(self, value: Any, pointer: str, *, required: Sequence[str], optional: Sequence[str] = ()) -> bool:
        if not isinstance(value, dict):
            self.add(pointer, f"must be a JSON object, not {json_kind(value)}.")
            return False
        for name in required:
            if name not in value:
                self.add(f"{pointer}/{name}", "is required.")
        for name in sorted(set(value) - set(required) - set(optional)):
            allowed = ", ".join(f"'{member}'" for member in (*required, *optional))
            self.add(f"{pointer}/{_escape(name)}", f"is not allowed here (allowed members: {allowed}).")
        return True

    def string(self, value: Any, pointer: str) -> str | None:
        if not isinstance(value, str):
            self.add(pointer, f"must be a string, not {json_kind(value)}.")
            return None
        if limits.string_problem(value) is not None:
            self.add(pointer, f"must be 1 to {limits.MAX_STRING_LENGTH} characters long.")
            return None
        return value

    def task_id(self, value: Any, pointer: str) -> str | None:
        if not isinstance(value, str):
            self.add(pointer, f"must be a task id (a string), not {json_kind(value)}.")
            return None
        if not limits.is_task_id(value):
            self.add(pointer, f"is not a valid task id: ids are {limits.TASK_ID_RULE}.")
            return None
        return value

    def result(self, value: Any, pointer: str) -> Any:
        """A task result within the core's limits; whether it fits the form (an object of its fields) is the service's
        rule, the same in GraphQL, so a non-object result is a 422 ``INVALID_TASK_RESULT``, not a 400 here."""
        problem = limits.json_problem(value)
        if problem is not None:
            self.add(pointer, f"{problem}.")
            return MISSING
        return value

    def array(self, value: Any, pointer: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.add(pointer, f"must be an array, not {json_kind(value)}.")
            return None
        return value


def _escape(name: str) -> str:
    """A member name as a JSON Pointer reference token (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def reservation(body: Any) -> str | None:
    """``PUT .../reservation``: ``{"ownerId"?: string}`` or no body at all; None means the caller."""
    if body is MISSING:
        return None
    check = _Checker()
    owner: str | None = None
    if check.object(body, "", required=(), optional=("ownerId",)) and "ownerId" in body:
        owner = check.string(body["ownerId"], "/ownerId")
    check.done()
    return owner


def finish(body: Any) -> Any:
    """``POST .../finish``: ``{"result": {...}}``; the result's fit with the form is the service's to check."""
    check = _Checker()
    if check.object(body, "", required=("result",)) and "result" in body:
        check.result(body["result"], "/result")
    check.done()
    return body["result"]


@dataclass(frozen=True)
class IdsBatch:
    ids: tuple[str, ...]
    owner_id: str | None = None


def ids_batch(body: Any, *, with_owner: bool) -> IdsBatch:
    """``POST .../batch/reserve`` (``{"ids": [...], "ownerId"?: ...}``) and ``.../batch/cancel-reservation``."""
    check = _Checker()
    ids: list[str] = []
    owner: str | None = None
    if check.object(body, "", required=("ids",), optional=("ownerId",) if with_owner else ()):
        values = check.array(body.get("ids"), "/ids") if "ids" in body else None
        for index, value in enumerate(values or ()):
            task_id = check.task_id(value, f"/ids/{index}")
            if task_id is not None:
                ids.append(task_id)
        if with_owner and "ownerId" in body:
            owner = check.string(body["ownerId"], "/ownerId")
    check.done()
    return IdsBatch(tuple(ids), owner)


def finish_batch(body: Any) -> tuple[tuple[str, Any], ...]:
    """``POST .../batch/finish``: ``{"items": [{"id": ..., "result": {...}}, ...]}``."""
    check = _Checker()
    items: list[tuple[str, Any]] = []
    if check.object(body, "", required=("items",)) and "items" in body:
        for index, item in enumerate(check.array(body["items"], "/items") or ()):
            pointer = f"/items/{index}"
            if check.object(item, pointer, required=("id", "result")) and "id" in item:
                task_id = check.task_id(item["id"], f"{pointer}/id")
                result = check.result(item["result"], f"{pointer}/result") if "result" in item else MISSING
                if task_id is not None and result is not MISSING:
                    items.append((task_id, result))
    check.done()
    return tuple(items)


__all__ = ["MISSING", "IdsBatch", "decode", "finish", "finish_batch", "ids_batch", "reservation"]
