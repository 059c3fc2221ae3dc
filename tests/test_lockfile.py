"""The locks in requirements/ match pyproject.toml, and the check notices when they stop matching."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "tools" / "lockfile.py"), "check"], capture_output=True, text=True, check=False
    )


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in ("pyproject.toml", "requirements", "tools"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            root.mkdir(exist_ok=True)
            shutil.copy(source, root / name)
    return root


def test_the_committed_locks_match_pyproject() -> None:
    result = _check(REPO)
    assert result.returncode == 0, result.stderr


def test_every_pin_carries_hashes() -> None:
    for lock in (REPO / "requirements").glob("*.txt"):
        pins = [line for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#")]
        assert pins, lock
        assert all(line.rstrip().endswith("\\") for line in pins), f"{lock}: a pin without --hash lines"


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        ('"pyyaml>=6",', '"pyyaml>=6",\n    "left-pad-py>=1",', "pins no version of left-pad-py"),
        ('"pyyaml>=6"', '"pyyaml>=6.0.1"', "compiled from other dependencies"),
    ],
    ids=["added dependency", "changed range"],
)
def test_a_pyproject_change_without_make_lock_is_caught(tmp_path: Path, before: str, after: str, reason: str) -> None:
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(before, after))
    result = _check(root)
    assert result.returncode == 1
    assert reason in result.stderr
    assert "run `make lock`" in result.stderr
