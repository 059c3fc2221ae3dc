"""SQLite persistence of the embedded engine.

Why SQLite in WAL mode with ``synchronous=FULL``: every acknowledged write (a 201 or a 204) is on disk before the
answer leaves, readers never block the writer, and one file under ``--data-dir`` is all the state there is.

Every state change of a process instance (its serialized workflow, its row, and the rows of the flow node
instances it touched) is written in ONE transaction (:meth:`Store.transaction`), so a crash in the middle of a
write leaves the instance as it was before the request, never half-advanced.

User tasks are flow node instances. The table ``flow_node_instances`` is the task index: every filter of
``GET /flow_node_instances`` is a column with an index, so a filtered page costs O(page), not O(all instances).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS definitions (
    definition_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    deployed_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS definition_versions (
    hash TEXT PRIMARY KEY,
    definition_id TEXT NOT NULL,
    xml TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS process_instances (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    process_instance_id TEXT NOT NULL UNIQUE,
    process_model_id TEXT NOT NULL,
    process_model_name TEXT,
    definition_id TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    started_by_root INTEGER NOT NULL,
    state TEXT NOT NULL,
    error_json TEXT,
    start_event_id TEXT,
    end_event_id TEXT,
    end_token_json TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    terminated_by TEXT,
    workflow TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pi_model ON process_instances (process_model_id, seq);
CREATE INDEX IF NOT EXISTS pi_corr ON process_instances (correlation_id, seq);
CREATE INDEX IF NOT EXISTS pi_state ON process_instances (state, seq);
CREATE TABLE IF NOT EXISTS flow_node_instances (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_node_instance_id TEXT NOT NULL UNIQUE,
    flow_node_id TEXT NOT NULL,
    flow_node_name TEXT NOT NULL,
    flow_node_type TEXT NOT NULL,
    flow_node_lane TEXT,
    event_type TEXT,
    state TEXT NOT NULL,
    process_instance_id TEXT NOT NULL,
    process_model_id TEXT NOT NULL,
    process_model_name TEXT,
    process_definition_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    parent_process_instance_id TEXT,
    previous_flow_node_instance_id TEXT,
    start_token_json TEXT NOT NULL,
    end_token_json TEXT,
    user_task_config_json TEXT,
    actual_owner_id TEXT,
    finished_by_user_id TEXT,
    error_json TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS fni_type_state ON flow_node_instances (flow_node_type, state, seq);
CREATE INDEX IF NOT EXISTS fni_type_state_created ON flow_node_instances (flow_node_type, state, created_at, seq);
CREATE INDEX IF NOT EXISTS fni_model_type_created
    ON flow_node_instances (process_model_id, state, flow_node_type, created_at, seq);
CREATE INDEX IF NOT EXISTS fni_instance ON flow_node_instances (process_instance_id, seq);
CREATE INDEX IF NOT EXISTS fni_model ON flow_node_instances (process_model_id, state, seq);
CREATE INDEX IF NOT EXISTS fni_node ON flow_node_instances (flow_node_id, state, seq);
CREATE INDEX IF NOT EXISTS fni_lane ON flow_node_instances (flow_node_lane, state, seq);
CREATE INDEX IF NOT EXISTS fni_corr ON flow_node_instances (correlation_id, seq);
CREATE INDEX IF NOT EXISTS fni_owner ON flow_node_instances (actual_owner_id, state, seq);
CREATE INDEX IF NOT EXISTS fni_created ON flow_node_instances (created_at, seq);
-- What running instances wait for besides people and workers: a message or signal by name, a timer by due time
-- (ISO 8601 UTC, so text order is time order). Rewritten with every change of the instance.
CREATE TABLE IF NOT EXISTS instance_waits (
    process_instance_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    due_at TEXT,
    flow_node_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS iw_instance ON instance_waits (process_instance_id);
CREATE INDEX IF NOT EXISTS iw_name ON instance_waits (kind, name);
CREATE INDEX IF NOT EXISTS iw_due ON instance_waits (kind, due_at);
"""

# External tasks (see embedded_engine/external_tasks.py): one row per external service task the token reached.
# A task is fetchable while it is pending and not locked (locked = 0, or its lock expired: lock_expires_ms <= now).
_SCHEMA += """
CREATE TABLE IF NOT EXISTS external_tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    external_task_id TEXT NOT NULL UNIQUE,
    flow_node_instance_id TEXT NOT NULL UNIQUE,
    flow_node_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    is_single_try INTEGER NOT NULL,
    process_instance_id TEXT NOT NULL,
    process_model_id TEXT NOT NULL,
    process_definition_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    worker_id TEXT,
    locked INTEGER NOT NULL DEFAULT 0,
    lock_expires_ms INTEGER,
    lock_expiration_time TEXT,
    state TEXT NOT NULL,
    result_json TEXT,
    error_json TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS et_topic ON external_tasks (state, topic, seq);
CREATE INDEX IF NOT EXISTS et_instance ON external_tasks (process_instance_id);
CREATE INDEX IF NOT EXISTS et_lock ON external_tasks (state, locked, lock_expires_ms);
"""

# API filter name -> column. Each filter takes one value or several, comma-joined.
FLOW_NODE_FILTER_COLUMNS: Mapping[str, str] = {
    "flowNodeInstanceId": "flow_node_instance_id",
    "flowNodeId": "flow_node_id",
    "flowNodeName": "flow_node_name",
    "flowNodeLane": "flow_node_lane",
    "flowNodeType": "flow_node_type",
    "eventType": "event_type",
    "correlationId": "correlation_id",
    "processDefinitionId": "process_definition_id",
    "processModelId": "process_model_id",
    "processModelName": "process_model_name",
    "processInstanceId": "process_instance_id",
    "parentProcessInstanceId": "parent_process_instance_id",
    "previousFlowNodeInstanceId": "previous_flow_node_instance_id",
    "ownerId": "owner_id",
    "state": "state",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
}

# sortSettings.sortBy -> column
FLOW_NODE_SORT_COLUMNS: Mapping[str, str] = {
    "flowNodeInstanceId": "flow_node_instance_id",
    "flowNodeId": "flow_node_id",
    "flowNodeName": "flow_node_name",
    "flowNodeLane": "flow_node_lane",
    "flowNodeType": "flow_node_type",
    "state": "state",
    "processModelId": "process_model_id",
    "processModelName": "process_model_name",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "correlationId": "correlation_id",
    "ownerId": "owner_id",
    "actualOwnerId": "actual_owner_id",
    "createdAt": "created_at",
    "startedAt": "created_at",
    "updatedAt": "updated_at",
    "finishedAt": "finished_at",
}

PROCESS_INSTANCE_FILTER_COLUMNS: Mapping[str, str] = {
    "processInstanceId": "process_instance_id",
    "processModelId": "process_model_id",
    "processDefinitionId": "definition_id",
    "correlationId": "correlation_id",
    "state": "state",
    "ownerId": "owner_id",
    "processModelName": "process_model_name",
    "processModelHash": "definition_hash",
    "terminatedByUserId": "terminated_by",
    "startEventId": "start_event_id",
    "endEventId": "end_event_id",
    "createdAt": "created_at",
    "finishedAt": "finished_at",
}

# createdBefore=<ISO timestamp> -> (column, comparison); timestamps are stored as ISO 8601 UTC, text order is time order
PROCESS_INSTANCE_RANGE_FILTERS: Mapping[str, tuple[str, str]] = {
    "createdBefore": ("created_at", "<"),
    "createdAfter": ("created_at", ">"),
    "finishedBefore": ("finished_at", "<"),
    "finishedAfter": ("finished_at", ">"),
}

# sortSettings.sortBy of GET /process_instances/query -> column (the SDK's ProcessInstanceSortableColumns we keep)
PROCESS_INSTANCE_SORT_COLUMNS: Mapping[str, str] = {
    "processInstanceId": "process_instance_id",
    "processModelId": "process_model_id",
    "processModelName": "process_model_name",
    "processModelHash": "definition_hash",
    "processDefinitionId": "definition_id",
    "correlationId": "correlation_id",
    "ownerId": "owner_id",
    "startedByRootAccessToken": "started_by_root",
    "state": "state",
    "terminatedByUserId": "terminated_by",
    "startEventId": "start_event_id",
    "endEventId": "end_event_id",
    "createdAt": "created_at",
    "finishedAt": "finished_at",
}


@dataclass(frozen=True)
class LaneScope:
    """Which lanes a caller may see: ``None`` means every lane (admin); otherwise tasks without a lane plus these."""

    visible_lanes: frozenset[str] | None


@dataclass(frozen=True)
class FlowNodeQuery:
    filters: Mapping[str, Sequence[str]]
    offset: int = 0
    limit: int = 0
    sort_column: str | None = None
    sort_descending: bool = False
    include_count: bool = True
    scope: LaneScope = LaneScope(None)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass
class _Group:
    committed: asyncio.Future[None]
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Store:
    """All SQL of the engine. Synchronous by design: calls are short, and the engine runs them on its loop thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._in_transaction = False
        self._group: _Group | None = None
        self._failure_callbacks: list[Callable[[], None]] = []

    def close(self) -> None:
        with self._lock:
            if self._group is not None:
                self._commit_group()
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work: everything inside is committed together or not at all.

        Inside a running event loop, units join a *group commit*: the first unit opens a transaction and schedules
        its COMMIT for the loop's next turn; every unit that runs before then becomes a savepoint in the same
        transaction (a failing unit rolls back to its savepoint alone). One fsync then makes the whole group
        durable. Writers must ``await durable()`` before they answer: a 204 still means "on disk". Outside a loop
        (scripts, seeding), each outermost unit commits on its own. A unit nested in another is part of it.
        """
        with self._lock:
            if self._in_transaction:
                yield
                return
            loop = _running_loop()
            if loop is None:
                yield from self._own_transaction()
                return
            if self._group is None:
                self._db.execute("BEGIN IMMEDIATE")
                self._group = _Group(loop.create_future())
                loop.call_soon(self._commit_group_when_idle)
            self._db.execute("SAVEPOINT unit")
            self._in_transaction = True
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK TO unit")
                self._db.execute("RELEASE unit")
                raise
            else:
                self._db.execute("RELEASE unit")
            finally:
                self._in_transaction = False

    def _own_transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_transaction = False

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current writes are durable (at once when nothing waits for a commit)."""
        if self._group is None:
            callback()
        else:
            self._group.after_commit.append(callback)

    def on_commit_failure(self, callback: Callable[[], None]) -> None:
        """Called when a group COMMIT fails: whatever was prepared in memory for it must be forgotten."""
        self._failure_callbacks.append(callback)

    async def durable(self) -> None:
        """Wait until everything written so far is committed (raises if that commit failed)."""
        if self._in_transaction or self._group is None:
            return  # nothing pending, or inside an outer unit whose owner commits it
        await asyncio.shield(self._group.committed)

    def _commit_group_when_idle(self) -> None:
        if self._in_transaction:  # an outer unit spans awaits (bulk seeding): commit once it closes
            loop = _running_loop()
            if loop is not None:
                loop.call_soon(self._commit_group_when_idle)
                return
        self._commit_group()

    def _commit_group(self) -> None:
        with self._lock:
            group, self._group = self._group, None
            if group is None:
                return
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                for callback in self._failure_callbacks:
                    callback()
                if not group.committed.done():
                    group.committed.set_exception(exc)
                    group.committed.exception()  # retrieved by the writers that await it
                return
        if not group.committed.done():
            group.committed.set_result(None)
        for callback in group.after_commit:
            callback()

    # -- meta ------------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- definitions -----------------------------------------------------------------------------------------

    def save_definition(self, definition_id: str, xml: str, digest: str, deployed_at: str, deployed_by: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO definition_versions (hash, definition_id, xml) VALUES (?, ?, ?)",
                (digest, definition_id, xml),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO definitions (definition_id, hash, deployed_at, deployed_by)"
                " VALUES (?, ?, ?, ?)",
                (definition_id, digest, deployed_at, deployed_by),
            )

    def current_definitions(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT d.definition_id, d.hash, d.deployed_at, d.deployed_by, v.xml FROM definitions d"
            " JOIN definition_versions v ON v.hash = d.hash ORDER BY d.deployed_at, d.definition_id"
        ).fetchall()
        return [dict(row) for row in rows]

    def delete_definition(self, definition_id: str, *, with_instances: bool) -> list[str]:
        """Undeploy a definitions file (its versions stay: running instances go on with theirs). With
        ``with_instances`` its instances go too, with all they left behind; returns their ids."""
        with self.transaction():
            self._db.execute("DELETE FROM definitions WHERE definition_id = ?", (definition_id,))
            if not with_instances:
                return []
            ids = [
                str(row[0])
                for row in self._db.execute(
                    "SELECT process_instance_id FROM process_instances WHERE definition_id = ?", (definition_id,)
                ).fetchall()
            ]
            for table in ("flow_node_instances", "instance_waits", "external_tasks", "process_instances"):
                self._db.executemany(
                    f"DELETE FROM {table} WHERE process_instance_id = ?",
                    [(pid,) for pid in ids],
                )
            return ids

    def definition_xml(self, digest: str) -> str | None:
        row = self._db.execute("SELECT xml FROM definition_versions WHERE hash = ?", (digest,)).fetchone()
        return None if row is None else str(row["xml"])

    # -- process instances -----------------------------------------------------------------------------------

    def insert_instance(self, row: Mapping[str, Any]) -> None:
        values = dict(row)
        values["error_json"] = _dumps(values.pop("error")) if values.get("error") is not None else None
        values.pop("error", None)
        values["end_token_json"] = _dumps(values.pop("end_token", None))
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        with self.transaction():
            self._db.execute(f"INSERT INTO process_instances ({columns}) VALUES ({marks})", values)

    def update_instance(self, process_instance_id: str, **fields: Any) -> None:
        values = dict(fields)
        if "error" in values:
            error = values.pop("error")
            values["error_json"] = None if error is None else _dumps(error)
        if "end_token" in values:
            values["end_token_json"] = _dumps(values.pop("end_token"))
        assignments = ", ".join(f"{key} = :{key}" for key in values)
        values["process_instance_id"] = process_instance_id
        with self.transaction():
            self._db.execute(
                f"UPDATE process_instances SET {assignments} WHERE process_instance_id = :process_instance_id",
                values,
            )

    def get_instance(self, process_instance_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM process_instances WHERE process_instance_id = ?", (process_instance_id,)
        ).fetchone()
        return None if row is None else _instance_row(row)

    def query_instances(
        self,
        filters: Mapping[str, Sequence[str]],
        offset: int,
        limit: int,
        *,
        ranges: Mapping[str, str] | None = None,
        sort_column: str | None = None,
        sort_descending: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of instances: ``filters`` by PROCESS_INSTANCE_FILTER_COLUMNS, ``ranges`` by
        PROCESS_INSTANCE_RANGE_FILTERS (name -> ISO timestamp), sorted by a column (then start order), else in
        start order."""
        where, params = _where(filters, PROCESS_INSTANCE_FILTER_COLUMNS)
        clauses = [where[len("WHERE ") :]] if where else []
        for name, value in (ranges or {}).items():
            column, comparison = PROCESS_INSTANCE_RANGE_FILTERS[name]
            clauses.append(f"{column} {comparison} ?")
            params.append(value)
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        order = "seq"
        if sort_column is not None:
            if sort_column not in PROCESS_INSTANCE_SORT_COLUMNS.values():
                raise ValueError(f"cannot sort process instances by {sort_column!r}")
            direction = "DESC" if sort_descending else "ASC"
            order = f"{sort_column} {direction}, seq {direction}"
        total = int(self._db.execute(f"SELECT COUNT(*) FROM process_instances {where}", params).fetchone()[0])
        sql = f"SELECT * FROM process_instances {where} ORDER BY {order} LIMIT ? OFFSET ?"
        rows = self._db.execute(sql, [*params, limit if limit > 0 else -1, offset]).fetchall()
        return [_instance_row(row) for row in rows], total

    # -- flow node instances ---------------------------------------------------------------------------------

    def replace_waits(self, process_instance_id: str, waits: Sequence[tuple[str, str | None, str | None, str]]) -> None:
        """Record what the instance waits for now: (kind, name, due_at, flow_node_id) rows, replacing the old ones."""
        with self.transaction():
            self._db.execute("DELETE FROM instance_waits WHERE process_instance_id = ?", (process_instance_id,))
            self._db.executemany(
                "INSERT INTO instance_waits (process_instance_id, kind, name, due_at, flow_node_id)"
                " VALUES (?, ?, ?, ?, ?)",
                [(process_instance_id, *wait) for wait in waits],
            )

    def instances_waiting_for(self, kind: str, name: str) -> list[str]:
        """The running instances that wait for the message or signal ``name``, oldest first."""
        rows = self._db.execute(
            "SELECT DISTINCT w.process_instance_id FROM instance_waits w JOIN process_instances p"
            " ON p.process_instance_id = w.process_instance_id WHERE w.kind = ? AND w.name = ? ORDER BY p.seq",
            (kind, name),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def due_timers(self, until: str) -> list[str]:
        """The instances with a timer due at or before ``until`` (ISO 8601 UTC)."""
        rows = self._db.execute(
            "SELECT DISTINCT process_instance_id FROM instance_waits WHERE kind = 'timer' AND due_at <= ?"
            " ORDER BY due_at",
            (until,),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def next_timer_due(self) -> str | None:
        """When the next timer of any instance is due (ISO 8601 UTC), None without any."""
        row = self._db.execute("SELECT MIN(due_at) FROM instance_waits WHERE kind = 'timer'").fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def upsert_flow_node(self, row: Mapping[str, Any]) -> None:
        values = dict(row)
        values["start_token_json"] = _dumps(values.pop("start_token"))
        end_token = values.pop("end_token", None)
        values["end_token_json"] = None if end_token is None else _dumps(end_token)
        config = values.pop("user_task_config", None)
        values["user_task_config_json"] = None if config is None else _dumps(config)
        error = values.pop("error", None)
        values["error_json"] = None if error is None else _dumps(error)
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        updates = ", ".join(f"{key} = excluded.{key}" for key in values if key != "flow_node_instance_id")
        with self.transaction():
            self._db.execute(
                f"INSERT INTO flow_node_instances ({columns}) VALUES ({marks})"
                f" ON CONFLICT (flow_node_instance_id) DO UPDATE SET {updates}",
                values,
            )

    def update_flow_node(self, flow_node_instance_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{key} = :{key}" for key in fields)
        values = dict(fields, flow_node_instance_id=flow_node_instance_id)
        with self.transaction():
            self._db.execute(
                f"UPDATE flow_node_instances SET {assignments} WHERE flow_node_instance_id = :flow_node_instance_id",
                values,
            )

    def get_flow_node(self, flow_node_instance_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM flow_node_instances WHERE flow_node_instance_id = ?", (flow_node_instance_id,)
        ).fetchone()
        return None if row is None else _flow_node_row(row)

    def flow_nodes_of_instance(self, process_instance_id: str) -> dict[str, dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM flow_node_instances WHERE process_instance_id = ? ORDER BY seq",
            (process_instance_id,),
        ).fetchall()
        return {str(row["flow_node_instance_id"]): _flow_node_row(row) for row in rows}

    def query_flow_nodes(self, query: FlowNodeQuery) -> tuple[list[dict[str, Any]], int | None]:
        where, params = _where(query.filters, FLOW_NODE_FILTER_COLUMNS)
        lanes = query.scope.visible_lanes
        if lanes is not None:
            marks = ", ".join("?" for _ in lanes)
            clause = f"(flow_node_lane IS NULL OR flow_node_lane IN ({marks}))" if lanes else "flow_node_lane IS NULL"
            where = f"{where} AND {clause}" if where else f"WHERE {clause}"
            params.extend(sorted(lanes))
        order = "seq"
        if query.sort_column is not None:
            direction = "DESC" if query.sort_descending else "ASC"
            order = f"{query.sort_column} {direction}, seq {direction}"
        sql = f"SELECT * FROM flow_node_instances {where} ORDER BY {order} LIMIT ? OFFSET ?"
        rows = self._db.execute(sql, [*params, query.limit if query.limit > 0 else -1, query.offset]).fetchall()
        total: int | None = None
        if query.include_count:
            total = int(self._db.execute(f"SELECT COUNT(*) FROM flow_node_instances {where}", params).fetchone()[0])
        return [_flow_node_row(row) for row in rows], total

    # -- external tasks (embedded_engine/external_tasks.py) ----------------------------------------------------

    def insert_external_task(self, row: Mapping[str, Any]) -> None:
        values = dict(row)
        values["payload_json"] = _dumps(values.pop("payload"))
        values["is_single_try"] = int(bool(values["is_single_try"]))
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        with self.transaction():
            self._db.execute(f"INSERT INTO external_tasks ({columns}) VALUES ({marks})", values)

    def update_external_task(self, external_task_id: str, **fields: Any) -> None:
        values = dict(fields)
        for key in ("result", "error"):
            if key in values:
                value = values.pop(key)
                values[f"{key}_json"] = None if value is None else _dumps(value)
        assignments = ", ".join(f"{key} = :{key}" for key in values)
        values["external_task_id"] = external_task_id
        with self.transaction():
            self._db.execute(
                f"UPDATE external_tasks SET {assignments} WHERE external_task_id = :external_task_id", values
            )

    def get_external_task(self, external_task_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM external_tasks WHERE external_task_id = ?", (external_task_id,)
        ).fetchone()
        return None if row is None else _external_task_row(row)

    def external_tasks_of_instance(self, process_instance_id: str) -> dict[str, dict[str, Any]]:
        """The instance's external tasks by flow node instance id."""
        rows = self._db.execute(
            "SELECT * FROM external_tasks WHERE process_instance_id = ? ORDER BY seq", (process_instance_id,)
        ).fetchall()
        return {str(row["flow_node_instance_id"]): _external_task_row(row) for row in rows}

    def fetchable_external_tasks(self, topics: Sequence[str], now_ms: int) -> Iterator[dict[str, Any]]:
        """Pending, unlocked tasks of these topics, oldest first (lazily: the caller stops when it has enough)."""
        marks = ", ".join("?" for _ in topics)
        cursor = self._db.execute(
            f"SELECT * FROM external_tasks WHERE state = 'pending' AND topic IN ({marks})"
            " AND (locked = 0 OR lock_expires_ms <= ?) ORDER BY seq",
            [*topics, now_ms],
        )
        for row in cursor:
            yield _external_task_row(row)

    def external_tasks_of_flow_nodes(self, flow_node_instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The external tasks of these flow node instances, by flow node instance id."""
        found: dict[str, dict[str, Any]] = {}
        ids = list(flow_node_instance_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._db.execute(
                f"SELECT * FROM external_tasks WHERE flow_node_instance_id IN ({marks})", chunk
            ).fetchall()
            found.update((str(row["flow_node_instance_id"]), _external_task_row(row)) for row in rows)
        return found

    def expired_external_task_locks(self, now_ms: int) -> list[dict[str, Any]]:
        """Pending tasks still marked locked whose lock has expired."""
        rows = self._db.execute(
            "SELECT * FROM external_tasks WHERE state = 'pending' AND locked = 1 AND lock_expires_ms <= ?"
            " ORDER BY lock_expires_ms, seq",
            (now_ms,),
        ).fetchall()
        return [_external_task_row(row) for row in rows]

    def next_external_task_lock_expiry(self) -> int | None:
        """When the next lock of a pending task expires (epoch milliseconds), None without any lock."""
        row = self._db.execute(
            "SELECT MIN(lock_expires_ms) FROM external_tasks WHERE state = 'pending' AND locked = 1"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


def _external_task_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["payload"] = _loads(data.pop("payload_json"))
    data["result"] = _loads(data.pop("result_json"))
    data["error"] = _loads(data.pop("error_json"))
    data["is_single_try"] = bool(data["is_single_try"])
    data["locked"] = bool(data["locked"])
    return data


def _where(filters: Mapping[str, Sequence[str]], columns: Mapping[str, str]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for name, values in filters.items():
        column = columns[name]
        if len(values) == 1:
            clauses.append(f"{column} = ?")
        else:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
        params.extend(values)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _instance_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["error"] = _loads(data.pop("error_json"))
    data["end_token"] = _loads(data.pop("end_token_json"))
    data["started_by_root"] = bool(data["started_by_root"])
    return data


def _flow_node_row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["start_token"] = _loads(data.pop("start_token_json"))
    data["end_token"] = _loads(data.pop("end_token_json"))
    data["user_task_config"] = _loads(data.pop("user_task_config_json"))
    data["error"] = _loads(data.pop("error_json"))
    return data
