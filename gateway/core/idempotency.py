"""Idempotency keys: a retried write with the same key and body gets the first answer; the engine is not asked again.

The rule (after the IETF draft "The Idempotency-Key HTTP Header Field"), kept here once so that every face can
share it (REST uses it today; a GraphQL mutation could pass the same key):

- A write is identified by :class:`IdempotencyKey`: the caller's user id and rights, the method, the path and the
  client's key. Scoping by caller means one user can never replay (or block) another user's answer; binding to the
  rights (a digest of the token's claims but its times, ``Caller.rights``) means a replay never answers a token
  that grants something else: the same user with a lane claim less, another audience or scope, sends the request
  anew, and the engine decides (a finish of a task that caller cannot see is then a 404, not the kept answer).
  A refreshed token with the same rights replays as before.
- The first request with a key runs. Its answer is kept when it is final (:func:`is_final`: 2xx and 4xx, but
  not 401 and not 5xx, so a retry after a refreshed token, ``ENGINE_UNAVAILABLE`` or ``OUTCOME_UNKNOWN`` runs
  again; a finish that did happen is then recognised by the service itself, see ``TaskService.finish``).
- A later request with the same key and the same body fingerprint gets the kept answer (``replayed=True``).
- The same key with another body is refused with :class:`IdempotencyKeyReused` (422): the key was reused by
  mistake, and running the new request could do something the client did not mean to repeat.
- Duplicates that arrive while the first request is still running wait for it and then get its answer. If the
  first one's answer is not kept (it failed transiently, raised or was cancelled), one of the waiters runs instead.

Where the records live is the store's business; both stores below keep this rule and satisfy
:class:`IdempotencyRecords`:

- :class:`IdempotencyStore` (the default) keeps answers in memory **per gateway process** for
  :data:`DEFAULT_TTL_SECONDS` (24 hours, ``GATEWAY_IDEMPOTENCY_TTL_SECONDS``), at most :data:`DEFAULT_MAX_ENTRIES`
  answers and :data:`DEFAULT_MAX_WEIGHT` bytes (the oldest go first). Behind a load balancer with several gateway
  processes, a retry that lands on another process is not recognised by the key; the service's own finish replay
  (same caller, same result) still answers it as the first finish did.
- :class:`gateway.adapters.redis_state.RedisIdempotencyStore` (with ``GATEWAY_REDIS_URL``) keeps them in Redis, so
  every gateway instance sees every key: a duplicate on another instance waits for the first, a retry on another
  instance replays. A kept value crosses the process boundary, so it travels through a :class:`Codec`. When Redis
  cannot be consulted *before* a write runs, the write is refused (``IdempotencyUnavailable``, 503) and nothing
  reaches the engine; when it fails *after* the write ran, the caller still gets the write's own answer (not
  kept: a retry runs again, and the service's finish replay recognises a finish that did happen).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .errors import IdempotencyKeyReused

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 24 * 60 * 60.0
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_WEIGHT = 64 * 1024 * 1024


@dataclass(frozen=True)
class IdempotencyKey:
    user_id: str
    method: str
    path: str
    key: str
    rights: str = ""  # Caller.rights: what the caller's token grants


@dataclass(frozen=True)
class Outcome(Generic[T]):
    value: T
    replayed: bool


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a kept value becomes bytes for a store outside the process, and back (the in-process store keeps
    values as they are)."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


class IdempotencyRecords(Protocol):
    """Where the first answers live: what :func:`gateway.rest.resource.store_of` hands the REST face."""

    async def run(
        self,
        key: IdempotencyKey,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[T]],
        *,
        keep: Callable[[T], bool] = ...,
        weigh: Callable[[T], int] = ...,
        codec: Codec[T],
    ) -> Outcome[T]:
        """The first answer for ``key`` (replayed), or ``produce()``'s, kept when ``keep`` says it is final.

        Raises :class:`IdempotencyKeyReused` for another fingerprint under a known key."""
        ...


@dataclass
class _Entry:
    fingerprint: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    value: Any = None
    kept: bool = False
    expires_at: float = float("inf")
    weight: int = 0


def is_final(status: int) -> bool:
    """Whether an answer with this HTTP status (a GatewayError's ``status``) is kept for replays."""
    return status < 500 and status != 401


def fingerprint(request: Any) -> str:
    """A digest of a request's meaning: canonical JSON, so key order and whitespace make no difference."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    """A bounded, expiring map from :class:`IdempotencyKey` to the first answer. One per gateway process."""

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_weight: int = DEFAULT_MAX_WEIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._clock = clock
        self._entries: OrderedDict[IdempotencyKey, _Entry] = OrderedDict()
        self._kept = 0
        self._weight = 0

    def __len__(self) -> int:
        """Answers kept right now (requests still running are not counted)."""
        return self._kept

    async def run(
        self,
        key: IdempotencyKey,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[T]],
        *,
        keep: Callable[[T], bool] = lambda _: True,
        weigh: Callable[[T], int] = lambda _: 1,
        codec: Codec[T] | None = None,
    ) -> Outcome[T]:
        """The first answer for ``key`` (replayed), or ``produce()``'s, kept when ``keep`` says it is final.

        ``codec`` is not needed here: values stay in this process as they are."""
        while True:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                break
            if entry.fingerprint != request_fingerprint:
                raise IdempotencyKeyReused(key.key)
            if entry.kept:
                return Outcome(entry.value, replayed=True)
            await entry.done.wait()  # the first request is running: wait for it
            if entry.kept:
                return Outcome(entry.value, replayed=True)
            # its answer was not kept: look again (one of the waiters runs the request)
        entry = _Entry(request_fingerprint)
        self._entries[key] = entry
        try:
            value = await produce()
        except BaseException:
            self._forget(key, entry)
            raise
        if keep(value):
            entry.value, entry.kept = value, True
            entry.expires_at = self._clock() + self._ttl
            entry.weight = max(0, weigh(value))
            self._kept += 1
            self._weight += entry.weight
            self._entries.move_to_end(key)
            self._evict(keep_newest=key)
        else:
            self._forget(key, entry)
        entry.done.set()
        return Outcome(value, replayed=False)

    def _forget(self, key: IdempotencyKey, entry: _Entry) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]
        entry.done.set()

    def _drop(self, key: IdempotencyKey) -> None:
        entry = self._entries.pop(key)
        self._kept -= 1
        self._weight -= entry.weight

    def _expire(self) -> None:
        now = self._clock()
        # Kept answers are in the order they were kept, so the expired ones come first; running ones are skipped.
        for key, entry in list(self._entries.items()):
            if not entry.kept:
                continue
            if entry.expires_at > now:
                break
            self._drop(key)

    def _evict(self, keep_newest: IdempotencyKey) -> None:
        for key, entry in list(self._entries.items()):
            if self._kept <= self._max_entries and self._weight <= self._max_weight:
                break
            if entry.kept and key != keep_newest:
                self._drop(key)


__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_WEIGHT",
    "DEFAULT_TTL_SECONDS",
    "Codec",
    "IdempotencyKey",
    "IdempotencyKeyReused",
    "IdempotencyRecords",
    "IdempotencyStore",
    "Outcome",
    "fingerprint",
    "is_final",
]
