"""What gateway instances share through Redis (``GATEWAY_REDIS_URL``): idempotency records and the cursor secret.

:class:`RedisIdempotencyStore` keeps the rule of :mod:`gateway.core.idempotency` across every instance behind a
load balancer. One Redis string per key, named ``KEY_PREFIX`` + SHA-256 of the
:class:`~gateway.core.idempotency.IdempotencyKey`'s fields (no caller input in key names), holding a record: a
JSON header line (the body fingerprint; for a running request also the owner's random token), then the kept value.

- **claim** (a Lua script, one round trip): when the key is absent, ``SET`` a *pending* record with a lease
  (``PX``, :data:`DEFAULT_LEASE_SECONDS`) and run; else answer the record there. First writer wins, atomically.
- **renew**: while its request runs, the owner extends the lease every third of it, compare-and-set on its own
  pending record. A crashed owner stops renewing: its lease runs out and a waiter claims the key and runs.
- **settle**: the owner replaces its pending record by the *kept* record (``PX`` = the TTL,
  ``GATEWAY_IDEMPOTENCY_TTL_SECONDS``) or deletes it (an answer that is not kept), again compare-and-set on its own
  pending record, so an owner whose lease ran out (and was taken over) changes nothing.
- **everyone else**: another fingerprint is :class:`~gateway.core.errors.IdempotencyKeyReused` (422); a kept
  record is replayed; a pending one is polled again with backoff (10 ms growing to 100 ms) for at most
  ``wait_seconds`` (:data:`DEFAULT_WAIT_SECONDS`, 60), after which the duplicate is answered
  ``IdempotencyUnavailable`` (503, retry later).

Redis is asked with short timeouts (:data:`DEFAULT_TIMEOUT_SECONDS` per socket operation, one quick retry on a
stale connection, and a bound on every call), so a hung Redis answers 503 in about two seconds, not never. A
failure before the request ran refuses it (:class:`~gateway.core.errors.IdempotencyUnavailable`: nothing reached
the engine); a failure after it ran is logged and the caller gets the real answer (the pending record's lease
runs out; a retry runs again and the service's own finish replay recognises a finish that happened). A claim that
Redis carried out but whose answer was lost (a timeout) leaves a pending record that nobody renews: it runs out
within the lease, and a retry then runs.

Polling rather than pub/sub: a waiter needs nothing but the key, survives a Redis restart and an owner's crash the
same way, and duplicates are rare enough that a few reads each cost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..core.errors import IdempotencyUnavailable
from ..core.idempotency import DEFAULT_TTL_SECONDS, Codec, IdempotencyKey, IdempotencyKeyReused, Outcome

log = logging.getLogger("gateway")

T = TypeVar("T")

KEY_PREFIX = "processcube-task-gateway:"
DEFAULT_TIMEOUT_SECONDS = 1.0
DEFAULT_LEASE_SECONDS = 10.0
DEFAULT_WAIT_SECONDS = 60.0
FIRST_POLL_SECONDS = 0.01
LAST_POLL_SECONDS = 0.1

# KEYS[1] the record; ARGV[1] our pending record, ARGV[2] its lease (ms). Nil: claimed, run; else the record there.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# ARGV[1] our pending record, ARGV[2] the new lease (ms). 1: extended; 0: not ours any more.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# ARGV[1] our pending record, ARGV[2] the kept record, ARGV[3] its TTL (ms). 1: kept (also when a retried call
# finds it kept already); 0: not ours any more.
_KEEP = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then return 1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# ARGV[1] our pending record. 1: deleted; 0: not ours any more.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# ARGV[1] a fresh random secret: stored unless one is there (SET NX); the one stored either way.
_SHARED_SECRET = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


def connect(url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Redis:
    """A client (a connection pool) whose every socket operation gives up after ``timeout_seconds``; one retry at
    once (a pooled connection that died with a restarted Redis), not redis-py's default ten with backoff."""
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 1),
    )
    return client


def record_name(key: IdempotencyKey, prefix: str = KEY_PREFIX) -> str:
    """The Redis key of an idempotency key: a fixed-length digest of its fields, under ``prefix``."""
    fields = json.dumps(
        [key.user_id, key.rights, key.method, key.path, key.key], ensure_ascii=True, separators=(",", ":")
    )
    return f"{prefix}idempotency:v1:{hashlib.sha256(fields.encode()).hexdigest()}"


@dataclass(frozen=True)
class _Record:
    fingerprint: str
    kept: bool
    payload: bytes


def _pending_record(request_fingerprint: str) -> bytes:
    header = {"fp": request_fingerprint, "owner": secrets.token_hex(16)}
    return json.dumps(header, separators=(",", ":")).encode() + b"\n"


def _kept_record(request_fingerprint: str, payload: bytes) -> bytes:
    return json.dumps({"fp": request_fingerprint}, separators=(",", ":")).encode() + b"\n" + payload


def _parse(raw: bytes) -> _Record:
    head, _, payload = raw.partition(b"\n")
    header = json.loads(head)
    return _Record(str(header["fp"]), "owner" not in header, payload)


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisIdempotencyStore:
    """Idempotency records in Redis, shared by every gateway instance; the rule of
    :mod:`gateway.core.idempotency`, the protocol in this module's docstring."""

    def __init__(
        self,
        client: Redis,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        call_timeout_seconds: float = 2 * DEFAULT_TIMEOUT_SECONDS,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._call_timeout = call_timeout_seconds
        self._prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._keep = client.register_script(_KEEP)
        self._release = client.register_script(_RELEASE)
        self._shared_secret = client.register_script(_SHARED_SECRET)

    @classmethod
    def from_url(
        cls, url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, **options: Any
    ) -> RedisIdempotencyStore:
        """A store with its own client (see :func:`connect`); :meth:`aclose` closes it."""
        return cls(connect(url, timeout_seconds=timeout_seconds), call_timeout_seconds=2 * timeout_seconds, **options)

    async def ping(self, timeout_seconds: float = 1.0) -> None:
        """Return when Redis answers within ``timeout_seconds``; else raise ``IdempotencyUnavailable``."""
        await self._call(self._client.ping(), timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def shared_secret(self, name: str) -> bytes:
        """A random 32-byte secret that every instance using this Redis shares: the first one stores it."""
        found: bytes = await self._call(
            self._shared_secret(keys=[f"{self._prefix}secret:{name}"], args=[secrets.token_bytes(32)])
        )
        return found

    async def shared_cursor_secret(self, fallback: bytes) -> bytes:
        """The cursor secret the instances share (page cursors of one instance are good on another); ``fallback``
        (this process's own) when Redis cannot be asked now. Says that ``GATEWAY_CURSOR_SECRET`` is better."""
        try:
            secret = await self.shared_secret("cursor")
        except IdempotencyUnavailable as exc:
            log.error(
                "GATEWAY_CURSOR_SECRET is not set and Redis cannot be asked for the shared one (%s): page cursors"
                " of this instance will not be accepted by the others; set GATEWAY_CURSOR_SECRET",
                exc.__cause__ or exc,
            )
            return fallback
        log.warning(
            "GATEWAY_CURSOR_SECRET is not set: page cursors are signed with a secret shared through Redis;"
            " setting GATEWAY_CURSOR_SECRET on every instance is recommended (it survives a Redis flush)"
        )
        return secret

    async def run(
        self,
        key: IdempotencyKey,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[T]],
        *,
        keep: Callable[[T], bool] = lambda _: True,
        weigh: Callable[[T], int] = lambda _: 1,
        codec: Codec[T],
    ) -> Outcome[T]:
        """The first answer for ``key`` on any instance (replayed), or ``produce()``'s, kept when ``keep`` says so.

        ``weigh`` is not needed: Redis bounds its memory itself (``maxmemory``), and kept answers expire."""
        name = record_name(key, self._prefix)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        delay = FIRST_POLL_SECONDS
        while True:
            pending = _pending_record(request_fingerprint)  # a fresh owner token for each claim
            found: bytes | None = await self._call(self._claim(keys=[name], args=[pending, _milliseconds(self._lease)]))
            if found is None or found == pending:  # claimed (the second: a retried call found its own claim)
                break
            record = _parse(found)
            if record.fingerprint != request_fingerprint:
                raise IdempotencyKeyReused(key.key)
            if record.kept:
                return Outcome(codec.decode(record.payload), replayed=True)
            if loop.time() >= deadline:
                raise IdempotencyUnavailable(
                    "The first request with this Idempotency-Key is still running; nothing was sent to the engine"
                    f" for this one. Retry after {IdempotencyUnavailable.retry_after_seconds} seconds with the same"
                    " key to get its answer."
                )
            await asyncio.sleep(delay)  # the first request runs (here or on another instance): look again
            delay = min(delay * 1.5, LAST_POLL_SECONDS)
        return await self._run_as_owner(name, pending, request_fingerprint, produce, keep, codec)

    async def _run_as_owner(
        self,
        name: str,
        pending: bytes,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[T]],
        keep: Callable[[T], bool],
        codec: Codec[T],
    ) -> Outcome[T]:
        renewing = asyncio.get_running_loop().create_task(self._keep_lease(name, pending), name="idempotency lease")
        try:
            value = await produce()
        except BaseException:
            await self._stop(renewing)
            await self._settle(name, pending, None)
            raise
        await self._stop(renewing)
        await self._settle(
            name, pending, _kept_record(request_fingerprint, codec.encode(value)) if keep(value) else None
        )
        return Outcome(value, replayed=False)

    async def _settle(self, name: str, pending: bytes, kept: bytes | None) -> None:
        """Turn our pending record into the kept one (or delete it); a failure is logged, never raised: the
        request ran, and its caller gets its answer. The lease then runs out by itself."""
        try:
            if kept is None:
                await self._call(self._release(keys=[name], args=[pending]))
            elif not await self._call(self._keep(keys=[name], args=[pending, kept, _milliseconds(self._ttl)])):
                log.warning("an idempotency record's lease ran out while its request ran; its answer was not kept")
        except IdempotencyUnavailable as exc:
            log.warning(
                "could not %s an idempotency record in Redis (%s); a retry with its key will run again",
                "release" if kept is None else "keep",
                exc.__cause__ or exc,
            )

    async def _keep_lease(self, name: str, pending: bytes) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                held = await self._call(self._renew(keys=[name], args=[pending, _milliseconds(self._lease)]))
            except IdempotencyUnavailable as exc:
                log.warning("could not renew an idempotency record's lease in Redis (%s)", exc.__cause__ or exc)
                continue
            if not held:
                log.warning("an idempotency record's lease ran out while its request ran (another instance took it)")
                return

    @staticmethod
    async def _stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        await asyncio.wait([task])  # not `await task`: that would raise its CancelledError here

    async def _call(self, awaitable: Awaitable[Any], *, timeout_seconds: float | None = None) -> Any:
        """One Redis call, bounded; any failure (refused, reset, timed out, an error reply): IdempotencyUnavailable."""
        try:
            async with asyncio.timeout(self._call_timeout if timeout_seconds is None else timeout_seconds):
                return await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            raise IdempotencyUnavailable(
                "The gateway cannot consult its idempotency records (Redis) right now; nothing was sent to the"
                f" engine. Retry after {IdempotencyUnavailable.retry_after_seconds} seconds with the same"
                " Idempotency-Key."
            ) from exc


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_WAIT_SECONDS",
    "KEY_PREFIX",
    "RedisIdempotencyStore",
    "connect",
    "record_name",
]
