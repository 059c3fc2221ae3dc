"""Schemathesis hooks for the REST contract run (loaded with ``SCHEMATHESIS_HOOKS=tests.rest.schemathesis_hooks``).

Two values of the contract are valid only in relation to other requests, which a schema cannot say:

- ``Idempotency-Key`` names *one* request: a client makes a new key per request. Generated keys repeat (an
  example, the shortest string), and a repeated key with another body is rightly refused (422). So a generated key
  that is valid is replaced by a fresh UUID, which is just as valid; invalid keys (negative cases) stay as they are.
- ``cursor`` is a page's ``nextCursor``, signed by the gateway and bound to the query's filter and sort; a made-up
  one is rightly refused (400). So a generated cursor that fits the pattern is dropped (the parameter is optional);
  cursors that break the pattern (negative cases) stay. Tampered cursors have their own tests.
- ``since`` (the change feed) is a cursor of this gateway process: a made-up one that fits the pattern names
  another process's changes or ones the gateway never had, rightly 410 or 400. Dropped the same way.

One operation is left out: ``GET /api/v1/user-task-events`` answers an endless event stream (schemathesis would
read each one until its request timeout, 10 s a case). Its parameters are the list's (the same parser, fuzzed
through the list and the change feed); tests/rest/test_live.py holds the stream to its contract.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from gateway.rest.params import (
    CURSOR_PATTERN,
    EVENT_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_CURSOR_LENGTH,
    MAX_EVENT_ID_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
)

#: The endless event stream, left out of the run.
STREAMING_PATHS = ("/api/v1/user-task-events",)


def _fits(pattern: str, value: Any, max_length: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and re.search(pattern, value) is not None


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    for path in STREAMING_PATHS:
        raw_schema.get("paths", {}).pop(path, None)


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    for case in examples:
        map_case(context, case)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    headers = case.headers
    if headers:
        for name in list(headers):
            if name.lower() == "idempotency-key" and _fits(
                IDEMPOTENCY_KEY_PATTERN, headers[name], MAX_IDEMPOTENCY_KEY_LENGTH
            ):
                headers[name] = str(uuid.uuid4())
    query = case.query
    if query and "cursor" in query and _fits(CURSOR_PATTERN, query["cursor"], MAX_CURSOR_LENGTH):
        del query["cursor"]
    if query and "since" in query and _fits(EVENT_ID_PATTERN, query["since"], MAX_EVENT_ID_LENGTH):
        del query["since"]
    return case
