"""Run the official ProcessCube clients, unchanged, against a real embedded engine: each in its own process.

A driver (``drivers/*.cjs`` for ``@5minds/processcube_engine_client``, ``drivers/*.py`` for ``processcube_client``)
performs one scenario through the official client only and prints one JSON object: ``{"steps": {name: outcome}}``
where each outcome is ``{"ok": value}`` or ``{"error": {...}}`` (the engine's answer as the client reports it:
status, message, body). A failed step ends the scenario; the steps after it are absent. Tests assert on the steps,
so a failure names the step and the engine's answer instead of a stack trace.

The Python client is never imported here: importing it creates an event loop and applies nest_asyncio, which must
not happen in pytest's process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REPO, EngineServer

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "drivers"
MODELS = HERE / "models"
SHARED_PROCESSES = REPO.parent / "shared" / "processes"
NODE = shutil.which("node")
TS_CLIENT = REPO / "node_modules" / "@5minds" / "processcube_engine_client" / "package.json"

needs_node_client = pytest.mark.skipif(
    NODE is None or not TS_CLIENT.exists(), reason="node or @5minds/processcube_engine_client missing: `make install`"
)
needs_shared_processes = pytest.mark.skipif(
    not SHARED_PROCESSES.is_dir(), reason="shared/processes is not beside this checkout"
)


class Steps:
    """The outcome of a driver run: each step's value, or a failure naming the step and the engine's answer."""

    def __init__(self, driver: str, data: dict[str, Any], stderr: str) -> None:
        self.driver = driver
        self.steps: dict[str, Any] = data.get("steps", {})
        self.stderr = stderr

    def __getitem__(self, name: str) -> Any:
        outcome = self.steps.get(name)
        if outcome is None:
            failed = {key: value["error"] for key, value in self.steps.items() if "error" in value}
            pytest.fail(
                f"{self.driver}: step {name!r} was not reached; failed before it: {json.dumps(failed)[:3000]}"
                f"\n{self.driver}'s stderr (its end):\n{self.stderr[-3000:]}"
            )
        if "error" in outcome:
            pytest.fail(f"{self.driver}: step {name!r} failed: {json.dumps(outcome['error'])[:3000]}")
        return outcome["ok"]

    def error(self, name: str) -> dict[str, Any]:
        """A step that must have failed: the error the client reported."""
        outcome = self.steps.get(name)
        assert outcome is not None, f"{self.driver}: step {name!r} was not reached: {json.dumps(self.steps)[:3000]}"
        assert "error" in outcome, f"{self.driver}: step {name!r} succeeded, expected a refusal: {outcome}"
        error: dict[str, Any] = outcome["error"]
        return error


def run_driver(driver: str, engine: EngineServer, *args: str, timeout: float = 60) -> Steps:
    """Run ``drivers/<driver>`` (a ``.cjs`` with node, a ``.py`` with this venv's python) against ``engine``."""
    path = DRIVERS / driver
    env = {**os.environ, "ENGINE_URL": engine.url, "MODELS_DIR": str(MODELS), "SHARED_PROCESSES": str(SHARED_PROCESSES)}
    if path.suffix == ".cjs":
        assert NODE is not None
        command = [NODE, str(path), *args]
    else:
        command = [sys.executable, str(path), *args]
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{driver} printed no JSON (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    return Steps(driver, json.loads(lines[-1]), completed.stderr)
