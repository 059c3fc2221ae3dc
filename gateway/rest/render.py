"""Domain objects -> the REST face's JSON, with the GraphQL field names (the contract's ``UserTask`` schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..core.changes import ChangeKind
from ..core.domain import FinishOutcome, FormField, TaskListPage, UserTask, shown_state
from ..core.hub import Gap
from ..core.live import ChangeFeedPage, FeedEntry, TaskEvent


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC (``2026-01-15T09:30:00Z``); a time without zone from the engine is taken as UTC."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def form_field(field: FormField) -> dict[str, Any]:
    return {
        "id": field.id,
        "label": field.label,
        "type": field.type,
        "defaultValue": field.default_value,
        "enumValues": [{"id": value.id, "name": value.name} for value in field.enum_values],
    }


def task(item: UserTask) -> dict[str, Any]:
    return {
        "id": item.id,
        "flowNodeId": item.flow_node_id,
        "name": item.name,
        "lane": item.lane,
        "state": shown_state(item.state),  # the engine's lowercase states
        "processModelId": item.process_model_id,
        "processModelName": item.process_model_name,
        "processInstanceId": item.process_instance_id,
        "correlationId": item.correlation_id,
        "token": item.token,
        "reservedFor": item.reserved_for,
        "formFields": [form_field(field) for field in item.form_fields],
        "startedAt": timestamp(item.started_at),
        "finishedAt": timestamp(item.finished_at),
        "finishedBy": item.finished_by,
        "result": item.result,
    }


def page(result: TaskListPage) -> dict[str, Any]:
    return {
        "items": [task(item) for item in result.nodes],
        "totalCount": result.total_count,
        "nextCursor": result.end_cursor if result.has_next_page else None,
    }


def finished(outcome: FinishOutcome) -> dict[str, Any]:
    return {"task": task(outcome.task), "nextTasks": [task(item) for item in outcome.next_tasks]}


#: A change's kind as the name of its server-sent event (lower camel case); the data carries ``kind`` as is.
EVENT_NAMES: dict[ChangeKind, str] = {
    ChangeKind.WAITING: "waiting",
    ChangeKind.RESERVED: "reserved",
    ChangeKind.RESERVATION_CANCELLED: "reservationCancelled",
    ChangeKind.FINISHED: "finished",
    ChangeKind.TERMINATED: "terminated",
}


def task_event(event: TaskEvent) -> dict[str, Any]:
    """One live event: the change, and the task as it is now (as the list route renders a task)."""
    return {"eventId": event.event_id, "kind": event.kind.value, "at": timestamp(event.at), "task": task(event.task)}


def gap(notice: Gap) -> dict[str, Any]:
    return {"after": notice.after, "message": notice.message}


def feed_entry(entry: FeedEntry) -> dict[str, Any]:
    return {
        "eventId": entry.event_id,
        "kind": entry.kind.value,
        "taskId": entry.task_id,
        "removed": entry.removed,
        "task": None if entry.task is None else task(entry.task),
    }


def change_page(page: ChangeFeedPage) -> dict[str, Any]:
    return {"changes": [feed_entry(entry) for entry in page.changes], "cursor": page.cursor, "hasMore": page.has_more}
