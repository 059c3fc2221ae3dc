"""Running the schemathesis CLI as a consumer would, and reading its NDJSON report (for the fuzz tests)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import REPO

#: The CLI of this environment, the one a consumer runs (`.venv/bin/schemathesis`).
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
#: Every run's seed: the same requests each time (the servers' own ids still differ from run to run).
SEED = 20260115


@dataclass(frozen=True)
class Exchange:
    """One request schemathesis sent and the answer it got."""

    method: str
    path: str  # the operation's path template, e.g. /api/v1/user-tasks/{id} (GraphQL: the endpoint's path)
    label: str
    mode: str  # positive (valid per the schema) or negative
    phase: str
    status: int
    headers: Mapping[str, Sequence[str]]
    content: bytes
    request_body: Any

    def header(self, name: str) -> str | None:
        for key, values in self.headers.items():
            if key.lower() == name.lower():
                return values[0] if values else ""
        return None

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class Run:
    command: str
    returncode: int
    stdout: str
    stderr: str
    report: Path

    def failure_text(self) -> str:
        return f"{self.command}\nexit code {self.returncode}\n{self.stdout[-25_000:]}\n{self.stderr[-5_000:]}"

    def summary(self) -> str:
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        generated = [line for line in lines if " generated" in line]
        last = lines[-1].strip("= ") if lines else "(no output)"
        return " / ".join([*generated, last])

    def events(self) -> Iterator[dict[str, Any]]:
        with self.report.open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)

    def exchanges(self) -> Iterator[Exchange]:
        for event in self.events():
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished["recorder"]
            interactions = recorder.get("interactions", {})
            for case_id, case in recorder.get("cases", {}).items():
                interaction = interactions.get(case_id)
                if not interaction or not interaction.get("response"):
                    continue
                value, response = case["value"], interaction["response"]
                content = response.get("content") or {}
                yield Exchange(
                    method=value["method"],
                    path=value["path"],
                    label=recorder.get("label", ""),
                    mode=value["meta"]["generation"]["mode"],
                    phase=value["meta"]["phase"]["name"],
                    status=response["status_code"],
                    headers=response.get("headers", {}),
                    content=base64.b64decode(content["$base64"]) if "$base64" in content else b"",
                    request_body=value.get("body"),
                )

    def check_kinds(self) -> set[str]:
        kinds: set[str] = set()
        for event in self.events():
            finished = event.get("ScenarioFinished")
            if finished is not None:
                for results in finished["recorder"].get("checks", {}).values():
                    kinds.update(result["name"] for result in results)
        return kinds


def run_schemathesis(
    arguments: Sequence[str], report_dir: Path, *, env: Mapping[str, str] | None = None, timeout: float = 900
) -> Run:
    """``schemathesis run <arguments>`` in the repository (so it reads schemathesis.toml), writing an NDJSON report.

    The environment is this one without any ``SCHEMATHESIS_*`` variable (no hooks sneak in), plus ``env``.
    """
    full = ["run", *arguments, "--report", "ndjson", "--report-dir", str(report_dir)]
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SCHEMATHESIS_")}
    extra = dict(env or {})
    shown = " ".join([*(f"{key}={value}" for key, value in extra.items()), "schemathesis", *full])
    completed = subprocess.run(
        [str(SCHEMATHESIS), *full],
        cwd=REPO,
        env={**clean, "NO_COLOR": "1", **extra},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    reports = sorted(report_dir.glob("*.ndjson"))
    run = Run(shown, completed.returncode, completed.stdout, completed.stderr, reports[-1] if reports else Path())
    assert reports, run.failure_text()
    print(f"\n{run.summary()}\ncommand: {shown}")
    return run


__all__ = ["SEED", "Exchange", "Run", "run_schemathesis"]
