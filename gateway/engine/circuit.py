"""A circuit breaker for one engine: a dead engine costs a caller microseconds, not a connect attempt each.

DESIGN. It lives in the client (not in the gateway's adapter) because the client is the one place that knows
what happened on the wire: whether a request failed to connect, lost its connection before any answer, timed out
or got an answer. Every user of one pool shares it (the gateway's views per caller, the token requests to the
authority, the long-polling event stream), so they all see one engine state.

- **closed** (normal): every call goes out. A call that finds the engine *unreachable* counts one failure: its
  connection could not be made (refused, connect timeout, DNS) or was lost before any answer came (reset, closed:
  an engine that died, or a load balancer with nothing behind it). Any HTTP answer, whatever its status, proves
  the engine reachable and sets the count back to 0. A timeout counts neither way: a slow engine is not a dead
  one (its callers get ENGINE_TIMEOUT, not a closed door).
- **open**: after ``threshold`` unreachable calls in a row. Calls fail at once with
  :class:`CircuitOpenError`, an ``EngineUnavailableError`` that was never sent (so a write is provably not done
  and a retry later is safe), without touching the network, for ``cooldown`` seconds.
- **half-open**: after the cool-down the next call goes out as the probe; calls meanwhile still fail at once.
  The probe's answer (any status) closes the circuit; an unreachable probe opens it again for another cool-down;
  a probe that timed out tells nothing and frees the slot for the next call.

The clock is injectable (``clock=``), so the states can be tested without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Literal

from .errors import EngineUnavailableError

__all__ = ["CircuitBreaker", "CircuitOpenError", "CircuitState"]

CircuitState = Literal["closed", "open", "half_open"]

logger = logging.getLogger("gateway.engine.circuit")

DEFAULT_THRESHOLD: Final = 5
DEFAULT_COOLDOWN: Final = 2.0


class CircuitOpenError(EngineUnavailableError):
    """The engine was unreachable for the last calls: this one was failed at once, without being sent."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, request_sent=False)
        self.retry_after = retry_after


class CircuitBreaker:
    """Counts unreachable calls in a row; opens after ``threshold``; lets one probe through after ``cooldown``.

    Not thread-safe: one event loop uses it (as it uses the client's pool). ``threshold`` 0 disables it.
    """

    def __init__(
        self,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 0:
            raise ValueError("threshold must not be negative")
        if cooldown <= 0:
            raise ValueError("cooldown must be positive")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        #: How often the circuit opened, and how many calls it failed at once (for tests and metrics).
        self.opened = 0
        self.rejected = 0

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def is_open(self) -> bool:
        """True while calls are failed at once (open, or half-open with its probe under way)."""
        return self._opened_at is not None

    def before_call(self, what: str) -> bool:
        """Raise :class:`CircuitOpenError` when this call may not go out; True when it is the half-open probe.

        A caller that got True must report the probe's end (:meth:`succeeded`, :meth:`failed` or
        :meth:`abandoned`), or no other probe is let through.
        """
        if self._opened_at is None:
            return False
        waited = self._clock() - self._opened_at
        if not self._probing and waited >= self.cooldown:
            self._probing = True
            return True
        self.rejected += 1
        retry_after = max(0.0, self.cooldown - waited)
        raise CircuitOpenError(
            f"engine unreachable: {what} was not sent, because the engine could not be reached for the last"
            f" {max(self.threshold, 1)} calls in a row (circuit open); the next attempt goes out in"
            f" {retry_after:.1f} s",
            retry_after=retry_after,
        )

    def succeeded(self, probe: bool = False) -> None:
        """A call got an answer (any status): the engine is reachable, the circuit closes."""
        if self._opened_at is not None:
            logger.warning("engine reachable again: circuit closed")
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self, probe: bool = False) -> None:
        """A call found the engine unreachable (no connection, or the connection lost before an answer)."""
        if probe:
            self._probing = False
            self._opened_at = self._clock()
            self.opened += 1
            return
        if self.threshold == 0:
            return
        self._failures += 1
        if self._opened_at is None and self._failures >= self.threshold:
            self._opened_at = self._clock()
            self.opened += 1
            logger.warning(
                "engine unreachable for %d calls in a row: circuit open, calls fail at once; a probe every %.1f s",
                self._failures,
                self.cooldown,
            )

    def abandoned(self, probe: bool = False) -> None:
        """A call ended without telling anything (timed out, cancelled): a probe's slot is freed for the next one."""
        if probe:
            self._probing = False
