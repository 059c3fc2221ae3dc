"""The candidate scan budget of one request: every residual scan of the request draws on it.

``residual_scan_limit`` bounds the candidates one listing may read for the gateway to filter. A GraphQL request can
hold many listings (aliases), so the face that runs several in one request opens a :class:`ScanBudget` around
them (:func:`scan_budget`); the service charges each scan it actually makes to the budget of the request that asks
(:func:`charge_scan`), and refuses one that would go over with ``QUERY_TOO_COMPLEX``. Without an open budget (a
REST listing: one per request) each scan is bounded on its own, by the same limit. A contextvar carries it, so the
service's signatures stay face-agnostic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from . import errors


@dataclass
class ScanBudget:
    """Candidates the request may still scan. Scans served from the cache, or shared with a concurrent identical
    one, cost nothing: only the scans this request makes are charged."""

    limit: int
    used: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def charge(self, candidates: int) -> None:
        """Count ``candidates`` scanned; raise QueryTooComplex (counting nothing) when they do not fit."""
        if self.used + candidates > self.limit:
            raise errors.QueryTooComplex(
                f"This request's filters leave {self.used + candidates} tasks in all for the gateway to check one by"
                f" one, over the limit of {self.limit} per request. Ask fewer listings with gateway-side filters in"
                " one request, or narrow them with filters the engine applies (processModelId, processInstanceId,"
                " flowNodeId, lane, correlationId, state)."
            )
        self.used += candidates


_current: ContextVar[ScanBudget | None] = ContextVar("scan_budget", default=None)


@contextmanager
def scan_budget(limit: int) -> Iterator[ScanBudget]:
    """Every scan made in this block (and the tasks it starts) draws on one budget of ``limit`` candidates."""
    budget = ScanBudget(limit)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def current_scan_budget() -> ScanBudget | None:
    """The budget of the request being served, or None (then each scan is bounded on its own)."""
    return _current.get()
