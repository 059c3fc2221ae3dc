"""When to try a request again, and how long to wait: exponential backoff with full jitter.

Reads are retried on connection errors and 503 a bounded number of times. Writes are retried only
when the request provably never reached the engine (connection refused, connect timeout), because a
repeated reserve/finish/start could happen twice. Timeouts are never retried here: the caller decides. A call the
circuit breaker failed at once is not retried either: waiting out a backoff is what the breaker saves callers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .circuit import CircuitOpenError
from .errors import EngineUnavailableError, ProcessCubeException, ServiceUnavailableError

__all__ = ["RetryPolicy"]


def _default_sleep(delay: float) -> Awaitable[None]:
    return asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter.

    `max_retries` counts retries after the first attempt (0 disables retrying). `sleep` and `random`
    are injectable so that tests can check the schedule without waiting.
    """

    max_retries: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0
    sleep: Callable[[float], Awaitable[None]] = field(default=_default_sleep, compare=False)
    random: Callable[[], float] = field(default=random.random, compare=False)

    def should_retry(self, exc: ProcessCubeException, *, attempt: int, write: bool) -> bool:
        """`attempt` is the number of retries already made for this request."""
        if attempt >= self.max_retries or isinstance(exc, CircuitOpenError):  # an open circuit answers at once
            return False
        if isinstance(exc, ServiceUnavailableError):
            return not write
        if isinstance(exc, EngineUnavailableError):
            return not write or not exc.request_sent
        return False

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**attempt)]; a Retry-After is a floor."""
        cap: float = min(self.max_delay, self.base_delay * (2.0**attempt))
        delay = cap * self.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    async def wait(self, attempt: int, *, retry_after: float | None = None) -> None:
        await self.sleep(self.delay(attempt, retry_after=retry_after))


NO_RETRY = RetryPolicy(max_retries=0)
