"""Several gateway instances sharing one Redis: a real ``redis-server`` on a free loopback port, one embedded engine
with the example models, and two gateway processes in front of it with ``GATEWAY_REDIS_URL`` (no cursor secret).

The servers are shared by the package's tests (starting them costs seconds); the test that stops Redis starts it
again on the same port before it ends, so the next test finds it as before.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import deploy_examples
from tests.rest.conftest import Approvals
from tests.servers import EngineServer, GatewayServer, free_port, gateway_in_front_of

REDIS_SERVER = shutil.which("redis-server")


@dataclass(kw_only=True)
class RedisServer:
    """``redis-server`` in its own process on a free loopback port, without persistence."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        with (self.workdir / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, f"redis-server exited with {self.process.returncode}"
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as client:
                    if client.ping():
                        return self
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "redis-server did not answer in 20 s"
            time.sleep(0.02)

    def kill(self) -> None:
        """Gone at once, as a crash (its data with it: nothing is saved)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        """Hung: the port accepts connections, nothing answers (SIGSTOP) until :meth:`resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture(scope="package")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    server = RedisServer(workdir=tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    with EngineServer(data_dir=tmp_path_factory.mktemp("multi-engine") / "data") as server:
        yield deploy_examples(server)


@pytest.fixture(scope="package")
def gateways(
    tmp_path_factory: pytest.TempPathFactory, engine: EngineServer, redis_server: RedisServer
) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """Two gateway instances (A, B) in front of one engine, sharing ``redis_server``; no GATEWAY_CURSOR_SECRET."""
    a, b = (
        gateway_in_front_of(engine.url, tmp_path_factory.mktemp(f"gateway-{name}"), GATEWAY_REDIS_URL=redis_server.url)
        for name in ("a", "b")
    )
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # both start at once (each takes seconds)
            list(pool.map(GatewayServer.start, (a, b)))
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
def approvals(engine: EngineServer) -> Approvals:
    return Approvals(engine, f"multi-{uuid.uuid4()}")
