"""Engine JSON <-> the client's task dicts and pages: pure functions, no I/O.

Every function that reads an engine reply validates it and raises `ProtocolError` when the reply is not
what the engine's contract (docs/engine.md) says, so garbage never travels further as a half-filled dict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote

from .errors import ProtocolError

__all__ = [
    "ACTIVITY_EVENTS",
    "PROCESS_EVENTS",
    "SOCKETIO_EVENT_NAMES",
    "USER_TASK_EVENTS",
    "USER_TASK_FLOW_NODE_TYPE",
    "Filter",
    "TaskPage",
    "UserTaskEvent",
    "authority_from_wire",
    "chunk_ids",
    "encode_query",
    "event_from_wire",
    "json_body",
    "start_result_from_wire",
    "task_from_wire",
    "task_page_from_wire",
    "user_task_query",
]

USER_TASK_FLOW_NODE_TYPE: Final = "bpmn:UserTask"
USER_TASK_EVENTS: Final[tuple[str, ...]] = (
    "user_task_waiting",
    "user_task_finished",
    "user_task_reserved",
    "user_task_reservation_canceled",
)
#: The engine's process notifications; a process that ends (terminated, failed) takes its waiting tasks with it.
PROCESS_EVENTS: Final[tuple[str, ...]] = ("process_started", "process_ended", "process_terminated", "process_error")
#: An activity (a user task among them) that an interrupting boundary event or an event-based gateway cut short:
#: it ends in state "canceled" without a user task event.
ACTIVITY_EVENTS: Final[tuple[str, ...]] = ("activity_canceled",)
#: The Socket.IO name of each event (the names above are long polling's): the official TypeScript client's
#: `socketSettings.paths` calls the process events `OnProcess*`; the user task events keep their names.
SOCKETIO_EVENT_NAMES: Final[Mapping[str, str]] = {
    **{name: name for name in USER_TASK_EVENTS},
    "process_started": "OnProcessStarted",
    "process_ended": "OnProcessFinished",
    "process_terminated": "OnProcessTerminated",
    "process_error": "OnProcessError",
}

#: A filter value: one value, several (matched as "any of"), or None (no filter).
Filter = str | Sequence[str] | None

_REQUIRED_STR: Final = ("flowNodeInstanceId", "flowNodeId", "processInstanceId", "processModelId", "state")
_OPTIONAL_STR: Final = (
    "flowNodeName",
    "flowNodeLane",
    "flowNodeType",
    "processDefinitionId",
    "processModelName",
    "correlationId",
    "ownerId",
    "startedAt",
    "finishedAt",
    "previousFlowNodeInstanceId",
    "actualOwnerId",
    "finishedByUserId",
)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of user tasks plus the engine's exact count of all matching tasks."""

    items: list[dict[str, Any]]
    total_count: int
    offset: int = 0
    limit: int | None = None

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total_count


@dataclass(frozen=True, slots=True)
class UserTaskEvent:
    """One engine notification about a user task. `raw` keeps the whole EventMessage."""

    name: str
    flow_node_instance_id: str | None
    flow_node_id: str | None = None
    flow_node_name: str | None = None
    flow_node_lane: str | None = None
    process_instance_id: str | None = None
    process_model_id: str | None = None
    correlation_id: str | None = None
    owner_id: str | None = None
    current_token: Any = None
    user_task_result: Any = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def _fail(what: str, detail: str) -> ProtocolError:
    return ProtocolError(f"invalid {what} from the engine: {detail}")


def task_from_wire(item: object) -> dict[str, Any]:
    """A flow node instance (engine JSON) -> the task dict users see.

    The dict keeps every engine field and adds the seed's keys: `userTaskInstanceId` (= flowNodeInstanceId),
    `token` (= startToken, the payload the task works on; `{}` when absent), `reservedFor` (= actualOwnerId
    or None) and `formFields` (= userTaskConfig.formFields, `[]` when absent).
    """
    if not isinstance(item, Mapping):
        raise _fail("user task", f"expected an object, got {type(item).__name__}")
    for key in _REQUIRED_STR:
        value = item.get(key)
        if not isinstance(value, str):
            raise _fail("user task", f"{key!r} must be a string, got {value!r}")
    for key in _OPTIONAL_STR:
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail("user task", f"{key!r} must be a string or absent, got {value!r}")
    config = item.get("userTaskConfig")
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise _fail("user task", f"'userTaskConfig' must be an object, got {config!r}")
    form_fields = config.get("formFields")
    if form_fields is None:
        form_fields = []
    if not isinstance(form_fields, list) or not all(isinstance(f, Mapping) for f in form_fields):
        raise _fail("user task", f"'userTaskConfig.formFields' must be a list of objects, got {form_fields!r}")
    task: dict[str, Any] = dict(item)
    token = item.get("startToken")
    task["userTaskInstanceId"] = item["flowNodeInstanceId"]
    task["token"] = {} if token is None else token
    task["reservedFor"] = item.get("actualOwnerId") or None
    task["formFields"] = [dict(f) for f in form_fields]
    return task


def task_page_from_wire(body: object, *, offset: int = 0, limit: int | None = None) -> TaskPage:
    """`{"flowNodeInstances": [...], "totalCount": N}` -> TaskPage (validated)."""
    if not isinstance(body, Mapping):
        raise _fail("flow node instance list", f"expected an object, got {type(body).__name__}")
    items = body.get("flowNodeInstances")
    if not isinstance(items, list):
        raise _fail("flow node instance list", f"'flowNodeInstances' must be a list, got {items!r}")
    total = body.get("totalCount")
    if total is None:
        total = offset + len(items)
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise _fail("flow node instance list", f"'totalCount' must be a count, got {total!r}")
    return TaskPage([task_from_wire(i) for i in items], total, offset, limit)


def start_result_from_wire(body: object) -> dict[str, Any]:
    """The answer of POST /process_models/{id}/start, validated."""
    if not isinstance(body, Mapping) or not isinstance(body.get("processInstanceId"), str):
        raise _fail("start result", f"expected an object with 'processInstanceId', got {body!r}")
    return dict(body)


def authority_from_wire(body: object) -> str:
    """GET /authority answers a JSON string: the authority's URL."""
    if not isinstance(body, str) or not body.startswith(("http://", "https://")):
        raise _fail("authority", f"expected a URL as a JSON string, got {body!r}")
    return body.rstrip("/")


def event_from_wire(name: str, body: object) -> UserTaskEvent:
    """An EventMessage (Socket.IO payload or long-polling answer) -> UserTaskEvent."""
    if not isinstance(body, Mapping):
        raise _fail("event message", f"expected an object, got {type(body).__name__}")

    def text(key: str) -> str | None:
        value = body.get(key)
        return value if isinstance(value, str) else None

    return UserTaskEvent(
        name=name,
        flow_node_instance_id=text("flowNodeInstanceId"),
        flow_node_id=text("flowNodeId"),
        flow_node_name=text("flowNodeName"),
        flow_node_lane=text("flowNodeLane"),
        process_instance_id=text("processInstanceId"),
        process_model_id=text("processModelId"),
        correlation_id=text("correlationId"),
        owner_id=text("ownerId"),
        current_token=body.get("currentToken"),
        user_task_result=body.get("userTaskResult"),
        raw=dict(body),
    )


def json_body(content: bytes, what: str) -> object:
    """Parse a success body; an empty or non-JSON body is a protocol error."""
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        excerpt = content[:80].decode("utf-8", "replace")
        raise ProtocolError(f"invalid JSON in the reply to {what}: {excerpt!r}") from exc


def _values(value: str | Sequence[str]) -> list[str]:
    if isinstance(value, str):
        return [value]
    values = list(value)
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"filter values must be strings, got {v!r}")
    return values


def user_task_query(
    filters: Mapping[str, Filter],
    *,
    offset: int = 0,
    limit: int | None = None,
    sort_by: str | None = None,
    sort_dir: Literal["ASC", "DESC"] = "ASC",
    include_count: bool = True,
) -> list[tuple[str, list[str]]]:
    """Query parameters of GET /flow_node_instances for user tasks: wire names and unencoded values.

    `filters` maps the engine's parameter names to a value or a list of values (matched as "any of");
    None and empty lists are left out (callers short-circuit an empty list: it would match nothing).
    """
    params: list[tuple[str, list[str]]] = []
    for name, value in filters.items():
        if value is None:
            continue
        values = _values(value)
        if values:
            params.append((name, values))
    params.append(("flowNodeType", [USER_TASK_FLOW_NODE_TYPE]))
    if sort_by is not None:
        if sort_dir not in ("ASC", "DESC"):
            raise ValueError(f"sort_dir must be 'ASC' or 'DESC', got {sort_dir!r}")
        params.append(("sortSettings", [json.dumps({"sortBy": sort_by, "sortDir": sort_dir}, separators=(",", ":"))]))
    if offset:
        params.append(("offset", [str(offset)]))
    if limit:
        params.append(("limit", [str(limit)]))
    params.append(("includeCount", ["true" if include_count else "false"]))
    return params


def encode_query(params: Iterable[tuple[str, Sequence[str]]]) -> str:
    """URL-encode parameters: each value on its own, several values joined by literal commas.

    So an id containing a comma stays one id ("a%2Cb") while separators stay commas, which is what the
    official clients send (`flowNodeId=a,b&flowNodeType=bpmn%3AUserTask&sortSettings=%7B…%7D`).
    """
    return "&".join(f"{quote(name, safe='')}={','.join(quote(v, safe='') for v in values)}" for name, values in params)


def chunk_ids(ids: Sequence[str], *, max_chars: int = 4000, max_ids: int = 200) -> list[list[str]]:
    """Split ids so that each `flowNodeInstanceId=a,b,c` stays well below common URL limits (8 KiB)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for id_ in ids:
        encoded = len(quote(id_, safe="")) + 1
        if current and (size + encoded > max_chars or len(current) >= max_ids):
            chunks.append(current)
            current, size = [], 0
        current.append(id_)
        size += encoded
    if current:
        chunks.append(current)
    return chunks
