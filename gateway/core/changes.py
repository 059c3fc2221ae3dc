"""What changed at the engine, in order: :class:`TaskChange` and the bounded replay buffer :class:`ChangeLog`.

Every engine event the gateway hears becomes one change with an **event id** ``<epoch>-<seq>``: ``epoch`` is
drawn when the gateway process starts, ``seq`` counts up from 1. Resuming after an id (SSE ``Last-Event-ID``,
GraphQL ``after``, the change feed's ``since``) replays what the buffer still holds. An id the buffer no longer
covers, or one minted by another gateway process (another instance, or this one before a restart), cannot be
resumed: :class:`~gateway.core.errors.ChangesExpired` tells the client to refetch its list instead of silently
missing changes.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import errors
from .ports import EngineFilter


class ChangeKind(enum.Enum):
    """What happened to a task (the engine's user task events, and tasks ended with their process)."""

    WAITING = "WAITING"
    RESERVED = "RESERVED"
    RESERVATION_CANCELLED = "RESERVATION_CANCELLED"
    FINISHED = "FINISHED"
    TERMINATED = "TERMINATED"


@dataclass(frozen=True)
class EngineChange:
    """One engine event, as the engine adapter hands it over. ``task_id`` is None for a process that ended with its
    tasks (``TERMINATED``): the tasks it ended are found by ``process_instance_id``. The other fields are what the
    event itself says of the task; they let a subscriber skip events that cannot concern it (:func:`may_concern`),
    never decide what a caller may see."""

    kind: ChangeKind
    task_id: str | None
    process_instance_id: str | None = None
    process_model_id: str | None = None
    flow_node_id: str | None = None
    lane: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class TaskChange(EngineChange):
    """An engine event as the hub keeps it: with its event id (``<epoch>-<seq>``) and when the gateway heard it."""

    event_id: str = field(kw_only=True)
    seq: int = field(kw_only=True)
    at: datetime = field(kw_only=True, default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class StreamConnected:
    """The engine stream (re)connected. From the second on, events in between may have been lost."""

    transport: str


@dataclass(frozen=True)
class StreamDisconnected:
    """The engine stream dropped; a reconnect is under way (a :class:`StreamConnected` follows when it succeeds)."""


#: What a change says of its task -> the engine filter field that tests it.
_SAID_OF_THE_TASK = {
    "process_model_ids": "process_model_id",
    "process_instance_ids": "process_instance_id",
    "flow_node_ids": "flow_node_id",
    "lanes": "lane",
    "correlation_ids": "correlation_id",
    "ids": "task_id",
}


def may_concern(change: EngineChange, engine_filter: EngineFilter) -> bool:
    """Whether ``change`` may be about a task ``engine_filter`` admits, by what the event says of the task (False
    only when sure: a field the event does not state is no reason to skip it). Costs nothing; lets subscribers
    skip the engine read for changes elsewhere."""
    for name, attribute in _SAID_OF_THE_TASK.items():
        wanted = getattr(engine_filter, name)
        said = getattr(change, attribute)
        if wanted and said is not None and said not in wanted:
            return False
    return True


_EVENT_ID = re.compile(r"([0-9a-f]{8})-([0-9]{1,18})")


class ChangeLog:
    """The last ``capacity`` changes of this gateway process, each under its event id."""

    def __init__(self, capacity: int, epoch: str | None = None) -> None:
        if capacity < 1:
            raise ValueError("a change log holds at least one change")
        self.epoch = epoch or secrets.token_hex(4)
        self._changes: deque[TaskChange] = deque(maxlen=capacity)
        self._seq = 0

    def append(self, change: EngineChange) -> TaskChange:
        self._seq += 1
        entry = TaskChange(**vars(change), event_id=f"{self.epoch}-{self._seq}", seq=self._seq)
        self._changes.append(entry)
        return entry

    @property
    def head(self) -> str:
        """The id after which the next change comes: ``since=head`` returns only what happens from now on."""
        return f"{self.epoch}-{self._seq}"

    def seq_of(self, event_id: str) -> int:
        """The sequence number of an id this log can resume after (raises ``BadRequest``/``ChangesExpired``)."""
        match = _EVENT_ID.fullmatch(event_id.strip())
        if match is None:
            raise errors.BadRequest(f"'{event_id[:80]}' is not an event id of this gateway (expected <epoch>-<seq>).")
        epoch, seq = match.group(1), int(match.group(2))
        if epoch != self.epoch:
            raise errors.ChangesExpired(
                f"Event id '{event_id}' was issued by another gateway process (or this one before a restart);"
                " read the list again, then follow the changes from the id that comes with it."
            )
        if seq > self._seq:
            raise errors.BadRequest(f"Event id '{event_id}' lies in the future of this gateway ({self.head}).")
        oldest = self._changes[0] if self._changes else None
        if oldest is not None and seq < oldest.seq - 1:
            raise errors.ChangesExpired(
                f"The changes after '{event_id}' are no longer held (the gateway keeps the last"
                f" {self._changes.maxlen}); read the list again, then follow the changes from the id that comes"
                " with it."
            )
        return seq

    def after(self, event_id: str) -> list[TaskChange]:
        """Every change after ``event_id``, oldest first (raises as :meth:`seq_of`)."""
        seq = self.seq_of(event_id)
        return [change for change in self._changes if change.seq > seq]

    def __len__(self) -> int:
        return len(self._changes)
