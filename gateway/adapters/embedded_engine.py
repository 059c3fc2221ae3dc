"""Starting and supervising the embedded engine for the gateway when no PROCESSCUBE_ENGINE_URL is configured.

The engine runs in its own process and the gateway reaches it over HTTP on loopback, exactly as it reaches a real
ProcessCube engine: switching to a real engine changes the URL and the credentials, nothing else.

A process can die (a crash, the OOM killer, somebody's ``kill -9``), and a gateway without its engine answers 503
to everything. So the gateway does not only start the engine, it keeps it running: :class:`Supervisor` waits for
the child to exit and starts it again on the same port and data directory (the engine recovers its state from
there), with exponential backoff so that an engine that cannot start does not become a busy loop. The supervisor
also knows at every moment whether the engine is up, which is what ``/healthz`` reports.

The engine's output (its log lines, a traceback) is read by the gateway and written again as records of logger
``embedded_engine`` (:func:`forward_output`), so that it comes out in the gateway's log format (JSON lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

from ..config import SettingsError
from ..engine import CircuitBreaker, ProcessCubeException, RetryPolicy, UserTaskClient

log = logging.getLogger("gateway.adapters.embedded_engine")

#: A line of the engine's own log format (``embedded_engine/__main__.py``): time, level, logger, message.
_ENGINE_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")
_ENGINE_LOG = logging.getLogger("embedded_engine")

#: A started engine is ready once its ApplicationInfo answers 200 here (below the engine's root URL).
READY_PATH: Final = "/atlas_engine/api/v1/info"


def engine_command(
    port: int,
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    demo: bool = False,
    anonymous: bool = True,
    clients_file: Path | None = None,
    log_level: str = "warning",
    exit_with_parent: bool = False,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that starts the embedded engine (``python -m embedded_engine …``), with this interpreter.

    The one place that knows the engine's options: the gateway starts its engine with it, and so do the tests and
    the benchmarks (each with its own process handling). Wait for :data:`READY_PATH` to answer before using it.
    ``demo`` seeds instances on the first start only (remembered in the data directory); ``anonymous=False``
    refuses the dummy token; ``clients_file`` is a JSON list of OAuth clients; ``exit_with_parent`` ends the engine
    when the process that started it dies.
    """
    args = [sys.executable, "-m", "embedded_engine", "--host", host, "--port", str(port)]
    args += ["--data-dir", str(data_dir), "--log-level", log_level, *extra_args]
    if exit_with_parent:
        args.append("--exit-with-parent")
    if not anonymous:
        args.append("--no-anonymous")
    if demo:
        args.append("--demo")
    if clients_file is not None:
        args += ["--clients", str(clients_file)]
    return args


def _port_is_free(port: int) -> bool:
    """Whether a server could listen on the port now.

    SO_REUSEADDR as uvicorn sets it: without it, the connections of an engine that was just killed (TIME_WAIT for
    a minute) would make its own port look taken, and a restart would wait for them for no reason. A listening
    socket still makes the bind fail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def describe_exit(returncode: int) -> str:
    """``-9`` -> "killed by signal SIGKILL (9)", ``1`` -> "exited with code 1": what a log reader needs."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


async def forward_output(stream: asyncio.StreamReader) -> None:
    """Every line the engine writes, as a record of logger ``embedded_engine`` (its own logger in
    ``engineLogger``), until the stream ends. A line that is no log record (a traceback's) keeps the level of the
    record before it."""
    level, source = logging.INFO, "embedded_engine"
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the reader's limit: what was read of it goes on as it is
            raw = await stream.read(65_536)
        if not raw:
            return
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        match = _ENGINE_LOG_LINE.match(text)
        if match is not None:
            level, source, text = logging.getLevelNamesMapping()[match[1]], match[2], match[3]
        if text:
            _ENGINE_LOG.log(level, "%s", text, extra={"engineLogger": source})


class EmbeddedEngine:
    """One embedded engine child process on a fixed loopback port (``port=0``: a free one, chosen once).

    The port is fixed for the lifetime of this object, so that a restarted engine is reachable at the same URL
    and the gateway's engine client needs no change.
    """

    def __init__(self, *, port: int, data_dir: Path, demo: bool, log_level: str = "warning") -> None:
        self.port = port or _free_port()
        self.data_dir = data_dir
        self.demo = demo
        self.log_level = log_level
        self._process: asyncio.subprocess.Process | None = None
        self._forwarding: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, startup_seconds: float = 30.0) -> str:
        """Start the engine and wait until it answers; the engine's URL."""
        await self.spawn(startup_seconds)
        return self.url

    async def spawn(self, startup_seconds: float = 30.0) -> asyncio.subprocess.Process:
        """Start the engine, wait until it answers, and return its process (what :class:`Supervisor` watches).

        Raises :class:`SettingsError` when the port is taken and :class:`RuntimeError` when the engine exits or
        does not answer in time (it is stopped then). Used for the first start and for every restart.
        """
        if not _port_is_free(self.port):
            raise SettingsError(
                f"Port {self.port} is taken, so the embedded engine cannot start there. Stop what uses it, set"
                " GATEWAY_EMBEDDED_ENGINE_PORT to another port (0: any free one), or point PROCESSCUBE_ENGINE_URL"
                " at a running engine."
            )
        command = engine_command(
            self.port, self.data_dir, demo=self.demo, log_level=self.log_level, exit_with_parent=True
        )
        # A process group of its own: Ctrl+C in the terminal of `make run` reaches the gateway only, which stops
        # the supervisor and then the engine. Were the engine in the terminal's group, it would die at the same
        # moment and the supervisor would take that for a crash. A gateway killed outright is covered by
        # --exit-with-parent.
        process = await asyncio.create_subprocess_exec(
            *command, process_group=0, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        self._process = process
        if process.stdout is not None:  # read as long as the engine writes: a full pipe would stop the engine
            forwarding = asyncio.get_running_loop().create_task(forward_output(process.stdout), name="engine output")
            self._forwarding.add(forwarding)
            forwarding.add_done_callback(self._forwarding.discard)
        deadline = time.monotonic() + startup_seconds
        # Asked with the engine client (one try each, short timeout): it knows how to talk to an engine. No circuit
        # breaker: an engine that is still starting is expected to be unreachable, and every try must go out.
        no_circuit = CircuitBreaker(threshold=0)
        polling = UserTaskClient(self.url, timeout=1.0, retry=RetryPolicy(max_retries=0), circuit=no_circuit)
        async with polling as client:
            while time.monotonic() < deadline:
                if process.returncode is not None:
                    raise RuntimeError(f"The embedded engine {describe_exit(process.returncode)} while starting.")
                with contextlib.suppress(ProcessCubeException):
                    await client.get_info()  # GET READY_PATH
                    return process
                await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"The embedded engine did not answer within {startup_seconds} seconds.")

    async def stop(self) -> None:
        """Stop the engine if it runs: SIGTERM (it finishes what it writes), SIGKILL after 10 seconds."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._forwarding:  # the engine's last lines, unless a child of it still holds the pipe open
            _, pending = await asyncio.wait(set(self._forwarding), timeout=1)
            for forwarding in pending:
                forwarding.cancel()


class ChildProcess(Protocol):
    """What the supervisor needs of a process: ``asyncio.subprocess.Process`` is one, a test fake another."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int: ...


class Backoff:
    """Delays between restart attempts: ``initial``, doubling up to ``maximum``; ``reset()`` starts over.

    A crash loop (an engine that dies right after it starts, a port somebody else holds) then costs a start every
    ``maximum`` seconds instead of a busy loop, while a single crash is repaired within ``initial`` seconds.
    """

    def __init__(self, *, initial: float = 0.5, factor: float = 2.0, maximum: float = 30.0) -> None:
        if initial <= 0 or factor < 1 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        """The delay before the next attempt; each call makes the following one longer."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


SupervisedState = Literal["up", "restarting", "stopped", "failed"]


@dataclass(frozen=True)
class SupervisorStatus:
    """A snapshot for ``/healthz``. ``restarts``: exits the gateway did not ask for, each followed by a restart."""

    state: SupervisedState
    restarts: int
    last_exit: str | None
    last_error: str | None
    pid: int | None

    @property
    def up(self) -> bool:
        return self.state == "up"

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "lastError": self.last_error,
            "pid": self.pid,
        }


class Supervisor:
    """Keeps a child process running: waits for it to exit and starts it again with ``start``, with backoff.

    ``start`` is a coroutine function that starts the child and returns it once it is ready (for the engine:
    :meth:`EmbeddedEngine.spawn`); when it raises (port taken, the child exits while starting), the next attempt
    follows after the next backoff delay. The backoff starts over once a child has stayed up ``stable_seconds``.
    Every exit and every restart is logged with the exit code or signal.

    The supervisor does not stop the child: :meth:`stop` only ends the watching (so that stopping the child
    afterwards is not taken for a crash), and the owner stops the child itself. ``clock`` and ``sleep`` are
    replaceable so that tests can check the schedule without waiting for it.
    """

    def __init__(
        self,
        start: Callable[[], Awaitable[ChildProcess]],
        *,
        name: str = "embedded engine",
        backoff: Backoff | None = None,
        stable_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._start = start
        self.name = name
        self.backoff = backoff if backoff is not None else Backoff()
        self.stable_seconds = stable_seconds
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._state: SupervisedState = "stopped"
        self._restarts = 0
        self._last_exit: str | None = None
        self._last_error: str | None = None
        self._pid: int | None = None

    def status(self) -> SupervisorStatus:
        return SupervisorStatus(
            state=self._state,
            restarts=self._restarts,
            last_exit=self._last_exit,
            last_error=self._last_error,
            pid=self._pid,
        )

    def watch(self, process: ChildProcess) -> None:
        """Start supervising ``process``, a child that ``start`` started and that is up now."""
        if self._task is not None:
            raise RuntimeError(f"the {self.name} is supervised already")
        self._state, self._pid = "up", process.pid  # at once: /healthz may ask before the task first runs
        self._task = asyncio.create_task(self._run(process), name=f"supervise {self.name}")

    async def stop(self) -> None:
        """Stop watching: no restart happens after this returns, whatever the child does."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._state = "stopped"
        self._pid = None

    async def _run(self, process: ChildProcess) -> None:
        try:
            while True:
                process = await self._watch_until_exit(process)
        except Exception:  # a bug here must not leave /healthz saying "up" for ever
            self._state = "failed"
            log.exception("%s: supervision failed, the engine will not be restarted", self.name)
            raise

    async def _watch_until_exit(self, process: ChildProcess) -> ChildProcess:
        """Wait for ``process`` to exit, then start a new one (retrying with backoff); the new one."""
        self._state, self._pid = "up", process.pid
        started = self._clock()
        returncode = await process.wait()
        if self._clock() - started >= self.stable_seconds:
            self.backoff.reset()
        self._state, self._pid = "restarting", None
        self._restarts += 1
        self._last_exit = describe_exit(returncode)
        delay = self.backoff.next()
        log.error(
            "%s (pid %d) %s; restart %d in %.1f s", self.name, process.pid, self._last_exit, self._restarts, delay
        )
        while True:
            await self._sleep(delay)
            try:
                process = await self._start()
            except Exception as exc:
                self._last_error = str(exc) or type(exc).__name__
                delay = self.backoff.next()
                log.warning("%s: restart failed: %s; next attempt in %.1f s", self.name, self._last_error, delay)
                continue
            self._last_error = None
            log.warning("%s restarted (pid %d), restart %d", self.name, process.pid, self._restarts)
            return process
