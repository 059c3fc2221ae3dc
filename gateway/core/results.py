"""Checking a task result against the task's form fields, before the engine sees it.

Rules (one per form field type; a value of ``null`` always means "left empty" and passes):

| field type                                   | accepted value                                     |
|----------------------------------------------|----------------------------------------------------|
| boolean, confirm                             | true / false                                       |
| long                                         | an integer                                         |
| number, range                                | a number                                           |
| enum, select, radio                          | one of the field's enum value ids                  |
| checkbox                                     | true/false, or a list of enum value ids            |
| date / datetime-local / time / month / week  | an ISO-8601 string of that kind                    |
| email, url                                   | a string of that shape                             |
| string, textarea, tel, password, color, hidden, file, custom | a string (custom and file: anything) |
| header, paragraph                            | display only: no value expected, ignored           |

Keys that match no form field are allowed: automated workers (the seed's examples) add fields such as
``autoApproved`` or ``reason`` that the form does not show.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit

from .domain import FieldProblem, FormField

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")


def _parses(parser: Callable[[str], object]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            parser(value)
        except ValueError:
            return False
        return True

    return check


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "boolean": (lambda v: isinstance(v, bool), "must be true or false"),
    "confirm": (lambda v: isinstance(v, bool), "must be true or false"),
    "long": (lambda v: isinstance(v, int) and not isinstance(v, bool), "must be an integer"),
    "number": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "must be a number"),
    "range": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "must be a number"),
    "date": (_parses(date.fromisoformat), "must be a date like 2024-01-15"),
    "datetime-local": (_parses(datetime.fromisoformat), "must be a date and time like 2024-01-15T10:30"),
    "time": (_parses(time.fromisoformat), "must be a time like 10:30"),
    "month": (lambda v: isinstance(v, str) and bool(_MONTH.match(v)), "must be a month like 2024-01"),
    "week": (lambda v: isinstance(v, str) and bool(_WEEK.match(v)), "must be a week like 2024-W03"),
    "email": (lambda v: isinstance(v, str) and bool(_EMAIL.match(v)), "must be an e-mail address"),
    "url": (_is_url, "must be an absolute URL"),
}
_STRING_TYPES = {"string", "textarea", "tel", "password", "color", "hidden", "text"}
_CHOICE_TYPES = {"enum", "select", "radio"}
_FREE_TYPES = {"custom", "file", "header", "paragraph"}


def _field_problem(form_field: FormField, value: Any) -> str | None:
    kind = form_field.type
    allowed = [item.id for item in form_field.enum_values]
    if kind in _CHOICE_TYPES:
        if allowed and value not in allowed:
            return f"must be one of {', '.join(allowed)}"
        if not allowed and not isinstance(value, str):
            return "must be a string"
        return None
    if kind == "checkbox":
        if isinstance(value, bool):
            return None
        if isinstance(value, list) and all(item in allowed for item in value):
            return None
        return "must be true/false or a list of " + (", ".join(allowed) if allowed else "choices")
    if kind in _STRING_TYPES:
        return None if isinstance(value, str) else "must be a string"
    if kind in _FREE_TYPES:
        return None
    check = _CHECKS.get(kind)
    if check is None:
        return None  # an unknown type: the engine decides
    accepts, message = check
    return None if accepts(value) else message


def result_problems(form_fields: tuple[FormField, ...], result: Any) -> list[FieldProblem]:
    if not isinstance(result, dict):
        return [FieldProblem(field="", message=f"the result must be an object, not {json_kind(result)}")]
    problems: list[FieldProblem] = []
    for form_field in form_fields:
        if form_field.id not in result or result[form_field.id] is None:
            continue
        problem = _field_problem(form_field, result[form_field.id])
        if problem is not None:
            problems.append(FieldProblem(field=form_field.id, message=f"'{form_field.label}' {problem}"))
    return problems


def json_kind(value: Any) -> str:
    """What kind of JSON value this is, for error messages: "null", "a number", "an array", …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
