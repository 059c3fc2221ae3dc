"""A sandboxed JavaScript evaluator for ProcessCube expressions.

ProcessCube models carry JavaScript: sequence-flow conditions such as ``token.current.confirmed === "true"`` and
script tasks whose function body ``return``s the task's result. The embedded engine evaluates them here, in V8
(mini-racer), and never as Python: a model is untrusted input, and Python's ``eval`` would hand it the host.

How the sandbox holds:

- V8 never runs in the engine process. Every evaluation goes to a worker process
  (:mod:`embedded_engine.js_worker`) holding one isolate. The engine used to keep isolates in-process, one per
  thread, created on a helper thread and with a private mini-racer callback muted before closing; a condition
  ``while(true){}`` then segfaulted the whole engine when it discarded the timed-out isolate, with mini-racer
  0.12.4, 0.13.2, 0.14.0 and 0.14.1 alike. A bare MiniRacer survived the same timeout, but nothing about
  mini-racer's internals holds from one version to the next, and one fault in V8 is one dead engine. Now whatever
  V8 or mini-racer do wrong ends a worker, never the engine: a worker that dies (segfault, V8's fatal
  out-of-memory abort, ``SIGKILL`` from outside) fails only the evaluation it was running, with
  :class:`JsEvaluationError`, and is replaced.
- Workers are plain ``subprocess`` children (``python -m embedded_engine.js_worker``), not ``multiprocessing``:
  fork would copy an engine with threads and a running event loop into the child; spawn and forkserver re-import
  the engine's ``__main__`` (uvicorn, SpiffWorkflow) in every child and bring their own pickling, queues and
  resource tracker, which a ``SIGKILL`` can leave broken. A subprocess runs just the worker module, speaks
  length-prefixed JSON over its own pipes and can be killed at any moment without leaving shared state behind.
- Each call has a budget (``DEFAULT_TIMEOUT_SECONDS``). The worker enforces it with mini-racer's own timeout and
  keeps its isolate when, after a garbage collection, a probe evaluation answers in time (see
  :meth:`~embedded_engine.js_worker.Evaluator.evaluate`), so an ordinary timeout costs no new process. The engine
  enforces ``budget + _GRACE_SECONDS`` on its own: a worker that has not answered by then is killed (``SIGKILL``)
  and replaced, and the evaluation times out all the same.
- Memory: the isolate has a hard heap limit (``MEMORY_LIMIT_BYTES``); the worker process as a whole is capped at
  :data:`~embedded_engine.js_worker.PROCESS_MEMORY_LIMIT_BYTES` resident (array buffers live outside the heap) by a
  watchdog thread inside it. Reaching either ends the evaluation with a memory-limit error, and the worker.
- A small pool (at most ``_MAX_WORKERS``, one idle spare kept started) serves callers from any thread; each
  worker serves one call at a time. A replacement is started as soon as a worker is lost, so it is usually ready
  before the next call. Workers end when the engine closes their stdin (``atexit``), when the engine dies (the
  same end-of-file), and when their parent process changes; their stderr goes to a private file that is read only
  to name the cause of a crash, never to the engine's log.
- Inside the isolate, before any model code runs, every intrinsic reachable from ``globalThis``
  (``Object.prototype``, ``Array.prototype``, ``JSON``, ...) and ``globalThis`` itself are deep-frozen, and the
  host-ish extras (``setTimeout``, ``Atomics``, ``WebAssembly``, ``SharedArrayBuffer``, ``WeakRef``,
  ``FinalizationRegistry``) are removed. A script that writes to ``Object.prototype`` changes nothing (sloppy mode)
  or throws (strict mode); it cannot leave state behind for the next evaluation, which is what makes reusing an
  isolate safe. Queued microtasks are drained within the budget of the call that queued them.
- No Python object crosses into JavaScript: the token goes in as a JSON string literal and is parsed inside V8; the
  result comes back as a JSON string. Each distinct source text is compiled once per isolate
  (``new Function('token', ...)``) and the compiled function is frozen too.

A JavaScript exception, a syntax error, a timeout, the memory limit or a crashed worker all surface as
:class:`JsEvaluationError`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Final, Literal

from .js_worker import EXIT_MEMORY, EXIT_STARTUP_FAILED, HEADER, MAX_FRAME_BYTES, MEMORY_LIMIT_BYTES, RETIRE
from .js_worker import PROCESS_MEMORY_LIMIT_BYTES as _PROCESS_MEMORY_LIMIT_BYTES

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MEMORY_LIMIT_BYTES",
    "JsEvaluationError",
    "evaluate_condition",
    "evaluate_expression",
    "run_script",
]

DEFAULT_TIMEOUT_SECONDS: Final = 0.2
"""Wall-clock budget of one evaluation (compilation, run and result conversion)."""

_GRACE_SECONDS: Final = 1.0
"""How long past the budget the engine waits for a worker's own timeout answer before it kills the worker.

Generous on purpose: it is only spent when the worker is wedged, and a too-short margin on a loaded machine would
kill healthy workers that were about to report their timeout (a new worker costs a quarter of a second of CPU).
"""

_STARTUP_TIMEOUT_SECONDS: Final = 30.0
"""How long a new worker may take to import mini-racer and set up its isolate (about 0.25 s when idle)."""

_MAX_WORKERS: Final = 4
"""Workers alive at once; a fifth concurrent caller waits for one of them."""

_SPARE_WORKERS: Final = 1
"""Idle workers kept started, so that losing one costs the next call no start-up time."""

_STDERR_TAIL_BYTES: Final = 4096

_Mode = Literal["expression", "script"]

_log = logging.getLogger(__name__)


class JsEvaluationError(Exception):
    """A model's JavaScript could not be evaluated: it threw, did not compile, timed out or used too much memory."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _NotDelivered(Exception):
    """The worker was gone before it had the whole request: nothing was evaluated, another worker may try."""


class _NoAnswer(Exception):
    """The deadline passed without an answer."""


class _Died(Exception):
    """The worker's output ended (it exited or was killed) before a whole answer arrived."""


class _Worker:
    """One worker process and the engine's ends of its pipes. Used by one thread at a time."""

    def __init__(self) -> None:
        # Closed in _reap(), when the worker is gone; read only to name the cause of a crash.
        self.stderr: IO[bytes] = tempfile.TemporaryFile(prefix="js-worker-")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "embedded_engine.js_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                # The directory holding this package, so the worker runs this very copy of it.
                cwd=Path(__file__).resolve().parent.parent,
            )
        except BaseException:
            self.stderr.close()
            raise
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.pid = self.process.pid
        self._stdin = self.process.stdin.fileno()
        self._stdout = self.process.stdout.fileno()
        os.set_blocking(self._stdin, False)
        self.ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def start_up(self) -> None:
        """Wait for the worker's ready frame (once)."""
        if self.ready:
            return
        try:
            payload, _flags = self._read_frame(time.monotonic() + _STARTUP_TIMEOUT_SECONDS)
        except _NoAnswer:
            raise _Died(f"the JavaScript sandbox did not start within {_STARTUP_TIMEOUT_SECONDS:.0f} s") from None
        except _Died:
            reason, _memory = self.describe_death()
            raise _Died(f"the JavaScript sandbox could not start: {reason}") from None
        try:
            hello = json.loads(payload)
            if not hello["ready"]:
                raise _Died(f"the JavaScript sandbox could not start: {hello.get('error')}")
        except (ValueError, TypeError, KeyError):
            raise _Died("the JavaScript sandbox could not start: it did not greet as expected") from None
        self.ready = True

    def call(self, request: bytes, deadline: float) -> tuple[bytes, bool]:
        """Send one request and return the answer and whether the worker retires after it."""
        self._write(HEADER.pack(len(request), 0) + request, deadline)
        payload, flags = self._read_frame(deadline)
        return payload, bool(flags & RETIRE)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self._stdin, select.POLLOUT)
        while view:
            try:
                written = os.write(self._stdin, view)
            except BlockingIOError:
                if not poller.poll(_poll_timeout_ms(deadline)) and time.monotonic() >= deadline:
                    raise _NoAnswer from None
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise _NotDelivered from None
            view = view[written:]

    def _read_frame(self, deadline: float) -> tuple[bytes, int]:
        size, flags = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > MAX_FRAME_BYTES:
            raise _Died("the JavaScript sandbox sent a malformed answer")
        return self._read_exact(size, deadline), flags

    def _read_exact(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        missing = size
        poller = select.poll()
        poller.register(self._stdout, select.POLLIN)
        while missing > 0:
            if not poller.poll(_poll_timeout_ms(deadline)):
                if time.monotonic() >= deadline:
                    raise _NoAnswer
                continue
            chunk = os.read(self._stdout, min(missing, 1 << 20))
            if not chunk:
                raise _Died("end of output")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        """End the process now (``SIGKILL``), reap it and close every file of it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self._reap()

    def request_exit(self) -> None:
        """Close the worker's stdin: once idle, it exits at end-of-file."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def close(self, timeout: float) -> None:
        """Ask the worker to exit; kill it if it has not within ``timeout``."""
        self.request_exit()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5.0)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            self.stderr.close()

    def describe_death(self) -> tuple[str, bool]:
        """Why the worker ended, for an error message, and whether that was a memory limit. Reaps it."""
        try:
            status = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "its output ended while it still ran", False
        if status == EXIT_MEMORY:
            return f"the sandbox process grew past {_PROCESS_MEMORY_LIMIT_BYTES // (1024 * 1024)} MiB", True
        if status == EXIT_STARTUP_FAILED:
            return "the isolate could not be created", False
        fatal = self._fatal_message()
        if status < 0:
            try:
                how = f"killed by {signal.Signals(-status).name}"
            except ValueError:
                how = f"killed by signal {-status}"
        else:
            how = f"exit status {status}"
        return how + (f": {fatal}" if fatal else ""), "out of memory" in fatal.lower()

    def _fatal_message(self) -> str:
        """The line in which V8 names a fatal error (``# Fatal process out of memory: ...``), if it wrote one."""
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - _STDERR_TAIL_BYTES))
            tail = self.stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        for line in tail.splitlines():
            if "Fatal" in line or "out of memory" in line:
                return line.lstrip("# ").strip()[:200]
        return ""


def _poll_timeout_ms(deadline: float) -> int:
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


class _Pool:
    """The workers: idle ones in a stack (the most recently used first, spares at the bottom), busy ones counted."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False

    def evaluate(self, request: bytes, budget: float) -> Any:
        for _attempt in range(3):
            worker = self._acquire()
            try:
                worker.start_up()
                answer, retire = worker.call(request, time.monotonic() + budget + _GRACE_SECONDS)
            except _NotDelivered:
                self._discard(worker, "it was gone before the request")
                continue
            except _NoAnswer:
                self._discard(worker, "no answer in time")
                raise JsEvaluationError(_timed_out(budget)) from None
            except _Died as exc:
                if not worker.ready:
                    self._discard(worker, str(exc))
                    raise JsEvaluationError(str(exc)) from None
                reason, memory = worker.describe_death()
                self._discard(worker, reason)
                if memory:
                    raise JsEvaluationError(f"JavaScript evaluation exceeded the memory limit ({reason})") from None
                raise JsEvaluationError(f"JavaScript evaluation crashed the sandbox process ({reason})") from None
            except BaseException:
                self._discard(worker, "interrupted")
                raise
            if retire:
                self._discard(worker, "retired")
            else:
                self._release(worker)
            return _decode(answer, budget)
        raise JsEvaluationError("JavaScript evaluation failed: the sandbox processes keep disappearing")

    def _acquire(self) -> _Worker:
        with self._lock:
            while True:
                if self._closed:
                    raise JsEvaluationError("JavaScript evaluation failed: the sandbox is shut down")
                worker = None
                while self._idle:
                    candidate = self._idle.pop()
                    if candidate.alive():
                        worker = candidate
                        break
                    self._forget_locked(candidate, "it had ended while idle")
                if worker is None and len(self._all) < _MAX_WORKERS:
                    try:
                        worker = self._start_locked()
                    except OSError as exc:  # no process can be started (file descriptors, memory, executable)
                        raise JsEvaluationError(f"the JavaScript sandbox could not start: {exc}") from exc
                if worker is not None:
                    self._top_up_locked()
                    return worker
                self._lock.wait()

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                self._all.discard(worker)
            else:
                self._idle.append(worker)
                self._lock.notify()
                return
        worker.close(timeout=1.0)

    def _discard(self, worker: _Worker, reason: str) -> None:
        worker.kill()
        _log.debug("JavaScript worker %d replaced: %s", worker.pid, reason)
        with self._lock:
            self._all.discard(worker)
            if not self._closed:
                self._top_up_locked()
            self._lock.notify()

    def _forget_locked(self, worker: _Worker, reason: str) -> None:
        worker.kill()  # reaping an already ended process does not block
        _log.debug("JavaScript worker %d replaced: %s", worker.pid, reason)
        self._all.discard(worker)

    def _start_locked(self) -> _Worker:
        worker = _Worker()
        self._all.add(worker)
        return worker

    def _top_up_locked(self) -> None:
        while len(self._idle) < _SPARE_WORKERS and len(self._all) < _MAX_WORKERS:
            try:
                self._idle.insert(0, self._start_locked())
            except OSError as exc:  # cannot start a process right now: the next call will try again
                _log.warning("could not start a JavaScript worker: %s", exc)
                return

    def worker_pids(self) -> list[int]:
        """Pids of the live workers, the idle one the next call takes first (for tests)."""
        with self._lock:
            idle = [worker.pid for worker in reversed(self._idle)]
            return idle + [worker.pid for worker in self._all if worker.pid not in idle]

    def close(self) -> None:
        """End every worker: idle ones by closing their stdin, busy ones (another thread still waits) by force."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = [worker for worker in self._all if worker not in idle]
            self._all.clear()
            self._lock.notify_all()
        for worker in busy:
            worker.kill()
        for worker in idle:
            worker.request_exit()
        deadline = time.monotonic() + 0.5  # a ready worker exits at once; one still starting up is killed
        for worker in idle:
            worker.close(timeout=max(0.0, deadline - time.monotonic()))


def _timed_out(budget: float) -> str:
    return f"JavaScript evaluation timed out after {round(budget * 1000)} ms"


def _decode(answer: bytes, budget: float) -> Any:
    try:
        decoded = json.loads(answer)
        ok = decoded["ok"]
    except RecursionError:
        # ``let a = []; for (...) a = [a]; return a`` is valid JSON a million levels deep.
        raise JsEvaluationError("JavaScript evaluation failed: the result is nested too deeply") from None
    except (ValueError, TypeError, KeyError):
        raise JsEvaluationError("the JavaScript sandbox returned an unexpected value") from None
    if ok:
        return decoded.get("value")
    kind = decoded.get("kind")
    if kind == "timeout":
        raise JsEvaluationError(_timed_out(budget))
    if kind == "memory":
        raise JsEvaluationError("JavaScript evaluation exceeded the memory limit")
    if kind == "internal":
        raise JsEvaluationError(f"JavaScript evaluation failed: {decoded.get('error')}")
    raise JsEvaluationError(str(decoded.get("error")))


_pool = _Pool()


@atexit.register
def _close_workers() -> None:
    _pool.close()


def _new_pool_after_fork() -> None:
    # A forked child must not share (or end) its parent's workers, and its copy of the pool's lock may be held.
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_new_pool_after_fork)


def _call(source: str, mode: _Mode, token: Any, *, as_boolean: bool, timeout: float | None) -> Any:
    budget = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        token_json = json.dumps(token, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JsEvaluationError(f"the token is not JSON: {exc}") from exc
    request = json.dumps(
        {"source": source, "mode": mode, "token": token_json, "asBoolean": as_boolean, "timeout": budget},
        separators=(",", ":"),
    ).encode()
    return _pool.evaluate(request, budget)


def evaluate_condition(expression: str | None, token: Any, *, timeout: float | None = None) -> bool:
    """Evaluate a sequence-flow condition over ``token`` and return its JavaScript truthiness.

    ``expression`` is either an expression (``token.current.approved``) or a function body with a ``return``
    (``const a = token.current.amount; return a > 100;``); the first is tried first.

    An empty or whitespace-only condition is no condition and is ``True``, as in ProcessCube, where a sequence flow
    whose ``conditionExpression`` is empty is simply taken (5Minds Studio writes such empty elements when a
    condition is cleared in the editor). Raises :class:`JsEvaluationError`.
    """
    if expression is None or not expression.strip():
        return True
    return bool(_call(expression, "expression", token, as_boolean=True, timeout=timeout))


def evaluate_expression(expression: str, token: Any, *, timeout: float | None = None) -> Any:
    """Evaluate an expression (or a ``return ...;`` body) over ``token`` and return its value as JSON data.

    ``undefined`` becomes ``None``; values JSON cannot express (functions, symbols) become ``None`` too.
    Raises :class:`JsEvaluationError`.
    """
    return _call(expression, "expression", token, as_boolean=False, timeout=timeout)


def run_script(body: str, token: Any, *, timeout: float | None = None) -> Any:
    """Run a ProcessCube script task: ``body`` is a JavaScript function body with ``token`` in scope.

    Its ``return`` value, as JSON data, is the task's result (``None`` when it returns nothing).
    Raises :class:`JsEvaluationError`.
    """
    return _call(body, "script", token, as_boolean=False, timeout=timeout)
