"""``python -m bench.live --quick`` runs end to end (real engine and gateway processes, 100 subscribers) and its
engine-call counts hold. Timings are printed by the benchmark, never asserted here: they depend on the machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO


def _rows(table: str) -> dict[str, list[str]]:
    """The benchmark's markdown table: measurement -> [value, target, result]."""
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[0].isdigit():
            rows[cells[1]] = cells[2:]
    return rows


@pytest.mark.slow  # 15-20 s: `make test-slow` (the counts are also held by tests/core/test_live.py)
def test_quick_run_keeps_its_engine_call_counts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.live", "--quick", "--data-dir", str(tmp_path / "live")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(done.stdout)
    calls = {measurement: cells for measurement, cells in rows.items() if measurement.startswith("engine calls")}
    assert len(calls) == 7, rows
    # one engine read per change whatever the number of event subscribers of one token
    assert calls["engine calls per change, 1 subscriber"][0].startswith("1 (")
    assert calls["engine calls per change, 100 subscribers (one token)"][0].startswith("1 (")
    # one refresh per distinct live list, whatever the number of its subscribers
    assert calls["engine calls for one change: 1 subscriber of one list"][0] == "1"
    assert calls["engine calls for one change: 100 subscribers of that list"][0] == "1"
    assert calls["engine calls for one change: 10 subscribers, one per list (10 lists)"][0] == "10"
    assert calls["engine calls for one change: 100 subscribers over those 10 lists"][0] == "10"
    assert calls["engine calls to open 100 subscribers of one list / over 10 lists"][0] == "1 / 10"
