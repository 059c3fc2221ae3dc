"""The fault and attack report: one table at the end of the run, summed over every test (and xdist worker).

Tests that inject faults or try hostile input count what they did and what they saw through the ``attack_report``
fixture::

    def test_something(attack_report: AttackReport) -> None:
        attack_report.add("faults injected", 3)
        attack_report.add("acknowledged writes lost", lost)  # must stay 0

The table lists every row of :data:`ROWS`; the rows in :data:`MUST_BE_ZERO` are what must never happen, and the
run says so next to any that is not 0 (the tests that counted them fail on their own as well).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

COUNTS = ("faults injected", "inputs tried")
MUST_BE_ZERO = (
    "crashes",
    "acknowledged writes lost",
    "writes applied twice",
    "writes misreported",
    "cross-user leaks",
)
ROWS = COUNTS + MUST_BE_ZERO
_KEY = "attack_report"


class AttackReport:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, row: str, amount: int = 1) -> None:
        if row not in ROWS:
            raise ValueError(f"no such row in the attack report: {row!r} (rows: {', '.join(ROWS)})")
        self.counts[row] += amount


def _report(config: pytest.Config) -> AttackReport:
    found: AttackReport | None = config.stash.get(_STASH, None)
    if found is None:
        found = AttackReport()
        config.stash[_STASH] = found
    return found


_STASH = pytest.StashKey[AttackReport]()


@pytest.fixture
def attack_report(request: pytest.FixtureRequest) -> AttackReport:
    """The run's report (one per process; xdist workers' reports are summed by the controller)."""
    return _report(request.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker_output: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: hand the counts to the controller
        worker_output[_KEY] = json.dumps(dict(_report(session.config).counts))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: add a finished worker's counts (the hook exists only with pytest-xdist)."""
    sent = getattr(node, "workeroutput", {}).get(_KEY)
    if sent:
        _report(node.config).counts.update(json.loads(sent))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if getattr(config, "workeroutput", None) is not None:
        return
    counts = _report(config).counts
    if not counts:
        return
    width = max(len(row) for row in ROWS)
    terminalreporter.section("fault and attack report")
    for row in ROWS:
        value = counts.get(row, 0)
        flag = "   <- must be 0" if row in MUST_BE_ZERO and value else ""
        terminalreporter.write_line(f"{row.ljust(width)}  {value:>8}{flag}")
