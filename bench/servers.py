"""The servers under test, each in its own process on a free loopback port (as tests/servers.py does for tests).

Kept separate from tests/ on purpose: the benchmarks must not break when a test helper changes shape.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.adapters.embedded_engine import READY_PATH, engine_command
from gateway.metrics import engine_requests_in

REPO = Path(__file__).resolve().parents[1]
API = "/atlas_engine/api/v1"
DUMMY_TOKEN = "ZHVtbXlfdG9rZW4="
ENGINE_HEADERS = {"Authorization": f"Bearer {DUMMY_TOKEN}"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class _Process:
    name: str
    logs: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{self.name}.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, probe: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + probe, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        path = self.logs / f"{self.name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Engine(_Process):
    """``python -m embedded_engine`` on a data directory."""

    data_dir: Path = Path(".data/bench/engine")

    @property
    def api(self) -> str:
        return self.url + API

    def start(self) -> Engine:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(engine_command(self.port, self.data_dir))
        self._wait_ready(READY_PATH, timeout=120)
        return self


@dataclass
class Gateway(_Process):
    """``python -m gateway`` pointed at an engine by environment variables only, as in production."""

    engine_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    #: the command that runs ``-m gateway`` (a profiler can wrap it)
    launcher: tuple[str, ...] = (sys.executable,)

    @property
    def graphql_url(self) -> str:
        return self.url + "/graphql"

    def start(self) -> Gateway:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "PROCESSCUBE_"))}
        env.update(
            {
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(self.port),
                "GATEWAY_LOG_LEVEL": "warning",
                "GATEWAY_ALLOW_ANONYMOUS": "true",
                "GATEWAY_UNSAFE_ANONYMOUS_ROOT": "true",  # the benchmarks' callers act as the engine's root
                "PROCESSCUBE_ENGINE_URL": self.engine_url,
                **self.env,
            }
        )
        self._spawn([*self.launcher, "-m", "gateway"], env=env)
        self._wait_ready("/healthz", timeout=60)
        return self

    def engine_calls(self) -> int:
        return engine_requests_in(httpx.get(self.url + "/metrics", timeout=10).text)

    def rss(self) -> int:
        return rss_bytes(self.pid)
