"""The gateway keeps its embedded engine running: a dead engine is restarted, and /healthz says so meanwhile.

First the supervisor's schedule with fake processes (no waiting, no real processes), then the real thing: a
gateway process with its embedded engine, whose engine child is killed with SIGKILL as a crash would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.adapters.embedded_engine import Backoff, ChildProcess, Supervisor, describe_exit
from gateway.config import SettingsError
from tests.servers import API, DUMMY_TOKEN, GatewayServer, free_port, gateway_with_embedded_engine, port_is_closed

# -- the supervisor with fake processes ------------------------------------------------------------------------


class FakeProcess:
    """A child that runs until the test ends it with ``exit(code)``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def exit(self, returncode: int) -> None:
        self._exit.set_result(returncode)

    async def wait(self) -> int:
        return await self._exit


class FakeLauncher:
    """``start`` for the supervisor: each call gives the next planned outcome (a process, or an error to raise)."""

    def __init__(self) -> None:
        self.planned: list[FakeProcess | Exception] = []
        self.calls = 0

    def plan(self, *outcomes: FakeProcess | Exception) -> None:
        self.planned.extend(outcomes)

    async def __call__(self) -> ChildProcess:
        self.calls += 1
        outcome = self.planned.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeTime:
    """A clock the test moves, and a sleep that records the delay and returns at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    """Let the supervisor's task run until ``condition`` holds (a bounded number of loop turns, not time)."""
    for _turn in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the supervisor never got there")


async def until_pid(supervisor: Supervisor, pid: int) -> None:
    await until(lambda: supervisor.status().pid == pid)


def supervisor_with_fakes(**options: Any) -> tuple[Supervisor, FakeLauncher, FakeTime]:
    launcher, fake_time = FakeLauncher(), FakeTime()
    supervisor = Supervisor(launcher, clock=fake_time.clock, sleep=fake_time.sleep, **options)
    return supervisor, launcher, fake_time


def test_backoff_doubles_from_half_a_second_up_to_thirty_and_starts_over_on_reset() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-9) == "killed by signal SIGKILL (9)"
    assert describe_exit(-15) == "killed by signal SIGTERM (15)"


async def test_each_death_is_restarted_with_a_longer_delay() -> None:
    supervisor, launcher, fake_time = supervisor_with_fakes()
    processes = [FakeProcess(pid) for pid in (100, 101, 102, 103)]
    launcher.plan(*processes[1:])
    supervisor.watch(processes[0])
    assert supervisor.status().state == "up"
    assert supervisor.status().pid == 100
    for died in (1, 2, 3):
        processes[died - 1].exit(-signal.SIGKILL)
        await until_pid(supervisor, processes[died].pid)
        assert supervisor.status().restarts == died
    assert fake_time.sleeps == [0.5, 1.0, 2.0]
    status = supervisor.status()
    assert (status.state, status.restarts, status.last_exit, status.pid) == (
        "up",
        3,
        "killed by signal SIGKILL (9)",
        103,
    )
    await supervisor.stop()


async def test_the_delays_start_over_once_the_engine_stayed_up_long_enough() -> None:
    supervisor, launcher, fake_time = supervisor_with_fakes(stable_seconds=60.0)
    first, second, third, fourth = (FakeProcess(pid) for pid in (1, 2, 3, 4))
    launcher.plan(second, third, fourth)
    supervisor.watch(first)
    first.exit(1)
    await until_pid(supervisor, 2)
    second.exit(1)
    await until_pid(supervisor, 3)
    fake_time.now += 61  # the third one runs for a minute before it dies
    third.exit(1)
    await until_pid(supervisor, 4)
    assert fake_time.sleeps == [0.5, 1.0, 0.5]
    await supervisor.stop()


async def test_a_failed_restart_is_retried_with_backoff_and_reported() -> None:
    supervisor, launcher, fake_time = supervisor_with_fakes()
    first, second = FakeProcess(1), FakeProcess(2)
    taken = SettingsError("Port 56100 is taken, so the embedded engine cannot start there.")
    launcher.plan(taken, RuntimeError("The embedded engine exited with code 1 while starting."), taken)
    supervisor.watch(first)
    first.exit(-signal.SIGKILL)
    await until(lambda: launcher.calls == 3)
    status = supervisor.status()
    assert (status.state, status.restarts, status.pid) == ("restarting", 1, None)
    assert status.last_exit == "killed by signal SIGKILL (9)"
    assert status.last_error is not None
    assert "is taken" in status.last_error
    assert not status.up
    launcher.plan(second)
    await until(lambda: supervisor.status().up)
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert supervisor.status().last_error is None
    assert supervisor.status().restarts == 1  # one death, however many attempts it took
    await supervisor.stop()


async def test_no_restart_after_stop() -> None:
    supervisor, launcher, _fake_time = supervisor_with_fakes()
    process = FakeProcess(1)
    supervisor.watch(process)
    await supervisor.stop()
    process.exit(-signal.SIGTERM)  # the owner stops the engine after the supervisor
    await asyncio.sleep(0)
    assert launcher.calls == 0
    assert supervisor.status().state == "stopped"


async def test_stop_during_the_backoff_delay_ends_the_restart() -> None:
    launcher = FakeLauncher()
    sleeping = asyncio.Event()

    async def sleep_for_ever(_seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(launcher, sleep=sleep_for_ever)
    process = FakeProcess(1)
    supervisor.watch(process)
    process.exit(1)
    await sleeping.wait()
    assert supervisor.status().state == "restarting"
    await supervisor.stop()
    assert launcher.calls == 0
    assert supervisor.status().state == "stopped"


async def test_a_supervisor_watches_one_process() -> None:
    supervisor, _launcher, _fake_time = supervisor_with_fakes()
    supervisor.watch(FakeProcess(1))
    with pytest.raises(RuntimeError, match="supervised already"):
        supervisor.watch(FakeProcess(2))
    await supervisor.stop()


# -- a real gateway process and its real engine child ----------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name in parentheses may contain spaces
    return fields[0], int(fields[1])


def is_running(pid: int) -> bool:
    """A zombie (exited, not yet reaped by whoever adopted it) does not count as running."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def engine_children(gateway: GatewayServer) -> list[int]:
    """The pids of the gateway's running embedded engine children, from /proc (not from what the gateway says)."""
    assert gateway.process is not None
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[1] != gateway.process.pid or not is_running(int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"embedded_engine" in command:
            children.append(int(entry.name))
    return children


def engines_on(data_dir: Path) -> list[int]:
    """Every running engine process on this data directory, whoever its parent is now (an orphan too)."""
    engines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not is_running(int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"embedded_engine" in command and str(data_dir).encode() in command:
            engines.append(int(entry.name))
    return engines


def the_engine_child(gateway: GatewayServer) -> int:
    children = engine_children(gateway)
    assert len(children) == 1, children
    return children[0]


def health(gateway: GatewayServer) -> httpx.Response:
    return httpx.get(gateway.url + "/healthz", timeout=10)


def wait_for_health(gateway: GatewayServer, status_code: int) -> dict[str, Any]:
    """Poll /healthz (which makes no engine call) until it answers ``status_code``; its body then."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert gateway.process is not None
        assert gateway.process.poll() is None, f"the gateway exited:\n{gateway.log()}"
        response = health(gateway)
        if response.status_code == status_code:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.02)
    raise AssertionError(f"/healthz never answered {status_code}:\n{gateway.log()}")


def kill_the_engine(gateway: GatewayServer) -> tuple[int, dict[str, Any]]:
    """SIGKILL the engine child and wait for the outage to show in /healthz; its pid and the 503 body."""
    pid = the_engine_child(gateway)
    assert health(gateway).json()["engine"]["pid"] == pid
    os.kill(pid, signal.SIGKILL)
    return pid, wait_for_health(gateway, 503)


def assert_restarting(body: dict[str, Any], restarts: int) -> None:
    assert body["status"] == "degraded"
    assert body["unavailable"] == ["engine"]
    assert body["engine"]["kind"] == "embedded"
    assert body["engine"]["state"] == "restarting"
    assert body["engine"]["restarts"] == restarts
    assert body["engine"]["lastExit"] == "killed by signal SIGKILL (9)"
    assert body["engine"]["pid"] is None
    assert "engineCalls" not in body  # counted at GET /metrics


def assert_up(gateway: GatewayServer, body: dict[str, Any], restarts: int) -> None:
    assert body["status"] == "ok"
    assert "unavailable" not in body
    assert body["engine"]["state"] == "up"
    assert body["engine"]["restarts"] == restarts
    assert body["engine"]["pid"] == the_engine_child(gateway)


TASKS_QUERY = """
{ userTasks(first: 50) { totalCount nodes { id name state processModelId processInstanceId token } } }
"""


def graphql_tasks(gateway: GatewayServer) -> dict[str, Any]:
    body = gateway.graphql(TASKS_QUERY)
    assert "errors" not in body, body
    tasks: dict[str, Any] = body["data"]["userTasks"]
    return tasks


def rest_tasks(gateway: GatewayServer) -> dict[str, Any]:
    response = httpx.get(gateway.url + "/api/v1/user-tasks", params={"limit": 50}, timeout=60)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def start_approval(gateway: GatewayServer, customer_id: str) -> None:
    """A task started on the engine itself, the way any other client of the engine would start work."""
    engine_url = health(gateway).json()["engineUrl"]
    response = httpx.post(
        f"{engine_url}{API}/process_models/ApprovalProcess/start",
        json={
            "processModelId": "ApprovalProcess",
            "returnOn": 1,
            "initialToken": {"amount": 30000, "customerType": "regular", "customerId": customer_id},
        },
        headers={"Authorization": f"Bearer {DUMMY_TOKEN}"},
        timeout=30,
    )
    response.raise_for_status()


@pytest.fixture
def embedded_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    """The gateway as `make run` starts it (embedded engine with demo data), without the read cache.

    No cache, so that every answer after a restart comes from the restarted engine and not from before the kill.
    """
    gateway = gateway_with_embedded_engine(tmp_path, demo=True, GATEWAY_CACHE_TTL_SECONDS="0").start()
    yield gateway
    gateway.stop()


def test_a_killed_engine_is_restarted_with_its_state_and_the_gateway_answers_again(
    embedded_gateway: GatewayServer,
) -> None:
    gateway = embedded_gateway
    assert_up(gateway, wait_for_health(gateway, 200), restarts=0)
    customer = f"C-{uuid.uuid4().hex[:8]}"
    start_approval(gateway, customer)
    rest_before = rest_tasks(gateway)
    graphql_before = graphql_tasks(gateway)
    assert customer in str(rest_before["items"])  # the task started before the kill is listed
    assert graphql_before["totalCount"] == len(rest_before["items"])

    killed, outage = kill_the_engine(gateway)
    assert_restarting(outage, restarts=1)
    # Nothing but /healthz is asked during the outage, so the first requests below meet the connections that
    # the gateway's engine client pooled before the kill: they must not fail.
    assert_up(gateway, wait_for_health(gateway, 200), restarts=1)
    assert the_engine_child(gateway) != killed
    assert not is_running(killed)

    assert rest_tasks(gateway) == rest_before  # recovered from the data directory, demo data not seeded twice
    assert graphql_tasks(gateway) == graphql_before
    log = gateway.log()
    assert "embedded engine (pid" in log
    assert "killed by signal SIGKILL (9)" in log
    assert "restart failed" not in log  # e.g. the dead engine's connections must not make its port look taken


def test_an_engine_killed_three_times_in_a_row_still_comes_back(embedded_gateway: GatewayServer) -> None:
    gateway = embedded_gateway
    wait_for_health(gateway, 200)
    before = rest_tasks(gateway)
    for restarts in (1, 2, 3):
        _killed, outage = kill_the_engine(gateway)
        assert_restarting(outage, restarts=restarts)
        assert_up(gateway, wait_for_health(gateway, 200), restarts=restarts)
    assert rest_tasks(gateway) == before
    assert graphql_tasks(gateway)["totalCount"] == len(before["items"])
    # The engine never stayed up for a minute, so each restart waited twice as long as the one before.
    delays = [float(delay) for delay in re.findall(r"restart \d+ in ([\d.]+) s", gateway.log())]
    assert delays == [0.5, 1.0, 2.0]
    assert "restart failed" not in gateway.log()


def test_a_port_taken_while_the_engine_is_down_is_retried_until_it_is_free(embedded_gateway: GatewayServer) -> None:
    gateway = embedded_gateway
    port = int(health(gateway).json()["engineUrl"].rsplit(":", 1)[1])
    os.kill(the_engine_child(gateway), signal.SIGKILL)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _attempt in range(200):  # take the port the moment the dead engine has let go of it
            try:
                squatter.bind(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.001)
        squatter.listen()
        deadline = time.monotonic() + 60
        while "is taken" not in str(health(gateway).json()["engine"]["lastError"]):
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.05)
        body = wait_for_health(gateway, 503)
        assert body["engine"]["state"] == "restarting"
        assert engine_children(gateway) == []
    finally:
        squatter.close()
    assert_up(gateway, wait_for_health(gateway, 200), restarts=1)
    assert health(gateway).json()["engine"]["lastError"] is None
    assert rest_tasks(gateway)["items"]
    assert "restart failed: Port" in gateway.log()


def test_sigterm_to_the_gateway_stops_its_engine_without_a_restart(tmp_path: Path) -> None:
    engine_port = free_port()
    gateway = gateway_with_embedded_engine(tmp_path, engine_port=engine_port).start()
    engine = the_engine_child(gateway)
    assert engines_on(tmp_path / "engine") == [engine]
    gateway.stop()  # SIGTERM: the lifespan stops the supervisor, then the engine
    assert not is_running(engine)
    assert engines_on(tmp_path / "engine") == []
    assert port_is_closed(engine_port)
    log = gateway.log()
    assert "killed by signal" not in log
    assert "exited with code" not in log
    assert "restarted" not in log


def test_ctrl_c_in_the_terminal_stops_the_gateway_and_then_its_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl+C signals the terminal's whole process group: the engine is not in it, the gateway stops it itself.

    Were the engine in the group, it would die together with the gateway, and the supervisor could take that for
    a crash and start it again while the gateway shuts down.
    """
    popen = subprocess.Popen

    def in_own_process_group(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        return popen(*args, process_group=0, **kwargs)  # the gateway leads a group, as a shell's job would

    monkeypatch.setattr(subprocess, "Popen", in_own_process_group)
    gateway = gateway_with_embedded_engine(tmp_path).start()
    monkeypatch.undo()
    assert gateway.process is not None
    engine = the_engine_child(gateway)
    try:
        os.killpg(gateway.process.pid, signal.SIGINT)
        assert gateway.process.wait(timeout=30) == 0
    finally:
        gateway.stop()
    assert not is_running(engine)
    assert engines_on(tmp_path / "engine") == []
    log = gateway.log()
    assert "exited with code" not in log
    assert "killed by signal" not in log
    assert "restarted" not in log
