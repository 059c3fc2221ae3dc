"""The JavaScript sandbox's worker process: one V8 isolate, evaluating on request.

:mod:`embedded_engine.js` starts this module as ``python -m embedded_engine.js_worker`` and talks to it over its
stdin and stdout. The worker exists so that nothing a model's JavaScript does to V8 (a segfault, a fatal
out-of-memory abort, a termination that mini-racer mishandles) can take the engine process down: it takes this
process down instead, and the engine starts another one.

This module imports only the standard library at import time; mini-racer is imported when an isolate is created
(:class:`Evaluator`), so the engine can share the framing helpers and constants below without loading V8.

Protocol (both directions): a frame is a 5-byte header, the payload length as a big-endian ``uint32`` and one
flags byte, followed by that many bytes of UTF-8 JSON.

- Worker → engine, once after start: ``{"ready": true}``, or ``{"ready": false, "error": "..."}`` (then it exits).
- Engine → worker, one request at a time: ``{"source", "mode", "token", "asBoolean", "timeout"}``, ``token``
  being the token already encoded as JSON text.
- Worker → engine, one answer per request: ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": "..."}``
  (the script threw or did not compile), or ``{"ok": false, "kind": "timeout" | "memory" | "internal", ...}``.
  Flag :data:`RETIRE` set: the worker exits right after this answer and must not be sent another request.

The worker exits when its stdin reaches end-of-file (the engine closed it, or died), when its parent process
goes away, and when the process grows past :data:`PROCESS_MEMORY_LIMIT_BYTES` (exit status :data:`EXIT_MEMORY`).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import struct
import sys
import threading
import time
from typing import Any, Final, Literal

__all__ = [
    "BOOTSTRAP",
    "EXIT_MEMORY",
    "EXIT_STARTUP_FAILED",
    "HEADER",
    "MAX_FRAME_BYTES",
    "MEMORY_LIMIT_BYTES",
    "PROCESS_MEMORY_LIMIT_BYTES",
    "RETIRE",
    "Evaluator",
    "main",
]

MEMORY_LIMIT_BYTES: Final = 64 * 1024 * 1024
"""Hard V8 heap limit of the isolate; reaching it ends the evaluation and retires the worker."""

PROCESS_MEMORY_LIMIT_BYTES: Final = 4 * MEMORY_LIMIT_BYTES
"""Resident-memory cap of a whole worker process.

The heap limit does not cover memory outside the V8 heap: ``new Uint8Array(1e8).fill(1)`` allocates its 100 MB
backing store outside of it, and a loop of those grew a process past 1 GB in two seconds in a test. A watchdog
thread ends the process when its resident set passes this cap. A worker that ends an evaluation above half of it
retires, so the next evaluation always starts with at least half of the cap to itself.
"""

EXIT_MEMORY: Final = 86
"""Exit status of a worker ended by its memory watchdog."""

EXIT_STARTUP_FAILED: Final = 87
"""Exit status of a worker whose isolate could not be created."""

HEADER: Final = struct.Struct(">IB")
"""Frame header: payload length and flags."""

RETIRE: Final = 0x01
"""Answer flag: the worker exits after this answer."""

MAX_FRAME_BYTES: Final = PROCESS_MEMORY_LIMIT_BYTES
"""No frame can be larger than the process that writes it may be."""

_MAX_CACHED_SOURCES: Final = 4096
_PROBE_TIMEOUT_SECONDS: Final = 0.1
_WATCH_INTERVAL_SECONDS: Final = 0.01
_IDLE_WATCH_INTERVAL_SECONDS: Final = 1.0

_Mode = Literal["expression", "script"]

# Installed once per isolate, before any model code. Everything the runner needs is captured in the closure
# before the freeze, so model code can neither replace it nor reach the cache.
BOOTSTRAP: Final = r"""
(function () {
  'use strict';
  const g = globalThis;
  for (const name of ['__timer_manager', 'setTimeout', 'clearTimeout', 'Atomics', 'SharedArrayBuffer',
                      'WebAssembly', 'WeakRef', 'FinalizationRegistry']) {
    try { delete g[name]; } catch (e) { /* not configurable: frozen below */ }
  }
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const makeFunction = Function;
  const freeze = Object.freeze;
  const getPrototypeOf = Object.getPrototypeOf;
  const ownKeys = Reflect.ownKeys;
  const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const ErrorClass = Error;
  const StringClass = String;
  const seen = new WeakSet();
  function deepFreeze(root) {
    const stack = [root];
    while (stack.length > 0) {
      const o = stack.pop();
      if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue;
      seen.add(o);
      freeze(o);
      stack.push(getPrototypeOf(o));
      for (const key of ownKeys(o)) {
        const d = getOwnPropertyDescriptor(o, key);
        if (d === undefined) continue;
        if ('value' in d) { stack.push(d.value); } else { stack.push(d.get); stack.push(d.set); }
      }
    }
  }
  const cache = new Map();
  function describe(e) {
    try {
      if (e instanceof ErrorClass) return StringClass(e.name) + ': ' + StringClass(e.message);
      return 'Uncaught ' + StringClass(e);
    } catch (ignored) {
      return 'Uncaught exception';
    }
  }
  function compile(id, source, mode) {
    let fn;
    if (mode === 'expression') {
      try {
        fn = makeFunction('token', 'return (' + source.replace(/[\s;]+$/, '') + '\n);');
      } catch (e) {
        fn = undefined;
      }
    }
    if (fn === undefined) fn = makeFunction('token', source);
    deepFreeze(fn);
    cache.set(id, fn);
    return fn;
  }
  function run(id, source, mode, tokenJson, asBoolean) {
    try {
      let fn = cache.get(id);
      if (fn === undefined) fn = compile(id, source, mode);
      const result = fn.call(undefined, parse(tokenJson));
      if (asBoolean) return stringify({ok: true, value: !!result});
      const text = stringify(result === undefined ? null : result);
      return stringify({ok: true, value: text === undefined ? null : parse(text)});
    } catch (e) {
      return stringify({ok: false, error: describe(e)});
    }
  }
  function forget() { cache.clear(); }
  Object.defineProperty(g, '__pcRun', {value: run, writable: false, configurable: false, enumerable: false});
  Object.defineProperty(g, '__pcForget', {value: forget, writable: false, configurable: false, enumerable: false});
  deepFreeze(g);
})();
"""


def _answer(kind: str, error: str) -> bytes:
    return json.dumps({"ok": False, "kind": kind, "error": error}).encode()


_TIMEOUT_ANSWER: Final = _answer("timeout", "timed out")
_MEMORY_ANSWER: Final = _answer("memory", "memory limit reached")


class Evaluator:
    """One isolate with the bootstrap installed, plus the ids of the sources compiled into it.

    Used by the worker's main loop and, in-process, by ``bench/sandbox.py`` to compare with the old design.
    """

    def __init__(self) -> None:
        # Imported here so that importing this module (the engine does) never loads V8.
        from py_mini_racer import JSOOMException, JSTimeoutException, MiniRacer

        self._timeout_error: type[Exception] = JSTimeoutException
        self._memory_error: type[Exception] = JSOOMException
        self._racer = MiniRacer()
        self._racer.set_hard_memory_limit(MEMORY_LIMIT_BYTES)
        self._racer.eval(BOOTSTRAP)
        self._ids: dict[tuple[str, str], int] = {}

    def evaluate(self, request: dict[str, Any]) -> tuple[bytes, bool]:
        """Answer one request: the JSON answer and whether this isolate must be retired afterwards.

        After a timeout the isolate is kept: mini-racer ends a timed-out evaluation with V8's
        ``TerminateExecution``, after which V8 runs new code normally (tests in ``test_js.py`` check it, with
        mini-racer 0.12.4 and 0.14.1). Before the isolate is trusted again its garbage is collected and an empty
        evaluation must finish within :data:`_PROBE_TIMEOUT_SECONDS`; that evaluation also runs any microtask the
        script left queued, so a queued endless loop retires the isolate instead of hanging the next evaluation.

        Once mini-racer's heap limit has been reached the isolate is retired, whatever the evaluation's outcome:
        the "limit reached" flag never resets, an isolate kept after repeated out-of-memory terminations stopped
        answering in a test, and a new worker costs only a quarter of a second. The flag can also be set after the
        evaluation that caused it (during the collection after an allocation loop timed out); it is checked again
        at the start of the next evaluation so that this one is not blamed for the memory.
        """
        dirty = self._memory_limit_reached()
        try:
            raw = self._run(
                str(request["source"]),
                "script" if request["mode"] == "script" else "expression",
                str(request["token"]),
                as_boolean=bool(request["asBoolean"]),
                timeout=float(request["timeout"]),
            )
        except Exception as exc:
            if isinstance(exc, self._memory_error) or (not dirty and self._memory_limit_reached()):
                return _MEMORY_ANSWER, True
            if isinstance(exc, self._timeout_error):
                return _TIMEOUT_ANSWER, dirty or not self._recovered()
            return _answer("internal", f"{type(exc).__name__}: {exc}"), True
        retire = dirty or self._memory_limit_reached()
        if not isinstance(raw, str):
            return _answer("internal", f"the isolate returned {type(raw).__name__}"), True
        try:
            return raw.encode(), retire
        except UnicodeEncodeError as exc:
            return _answer("internal", f"the result is not valid Unicode: {exc.reason}"), retire

    def _run(self, source: str, mode: _Mode, token_json: str, *, as_boolean: bool, timeout: float) -> object:
        key = (mode, source)
        if key not in self._ids and len(self._ids) >= _MAX_CACHED_SOURCES:
            self._racer.eval("__pcForget()")
            self._ids.clear()
        ident = self._ids.setdefault(key, len(self._ids))
        code = "__pcRun({}, {}, {}, {}, {})".format(
            ident, json.dumps(source), json.dumps(mode), json.dumps(token_json), "true" if as_boolean else "false"
        )
        started = time.monotonic()
        raw: object = self._racer.eval(code, timeout_sec=timeout)
        # mini-racer runs V8's microtask queue after an eval returns. A script may have queued work there
        # (``Promise.resolve().then(...)``, ``async`` functions): drain it now, inside this call's budget, so that it
        # can never run (or hang) during somebody else's evaluation.
        remaining = timeout - (time.monotonic() - started)
        self._racer.eval("0", timeout_sec=max(remaining, 0.001))
        return raw

    def _recovered(self) -> bool:
        """Whether the isolate is fit for the next evaluation after a timeout.

        A full garbage collection first: a script stopped in the middle of allocating leaves its garbage on the
        heap, and mini-racer's heap limit would count it against the next, innocent evaluation (a timed-out
        allocation loop followed by another one ran out of memory in half the time without this collection).
        """
        try:
            self._racer.low_memory_notification()
            answered = self._racer.eval("1", timeout_sec=_PROBE_TIMEOUT_SECONDS) == 1
        except Exception:
            return False
        return answered and not self._memory_limit_reached()

    def _memory_limit_reached(self) -> bool:
        try:
            return bool(self._racer.was_hard_memory_limit_reached())
        except Exception:
            return False


def _resident_bytes() -> int:
    """This process's resident set size (0 where ``/proc`` is missing: then only the heap limit holds)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _Watchdog:
    """Ends the worker when it outgrows :data:`PROCESS_MEMORY_LIMIT_BYTES` or its parent goes away.

    It checks every :data:`_WATCH_INTERVAL_SECONDS` while an evaluation runs (memory outside the V8 heap can grow
    by a gigabyte a second) and once a second while idle (the parent check). Exiting with ``os._exit`` from this
    thread is deliberate: the main thread is blocked in V8, and nothing in this process is worth a clean shutdown.
    """

    def __init__(self) -> None:
        self.busy = threading.Event()
        self._parent = os.getppid()

    def start(self) -> None:
        threading.Thread(target=self._watch, name="js-worker-watchdog", daemon=True).start()

    def _watch(self) -> None:
        while True:
            self.busy.wait(_IDLE_WATCH_INTERVAL_SECONDS)
            if os.getppid() != self._parent:
                os._exit(0)
            if _resident_bytes() > PROCESS_MEMORY_LIMIT_BYTES:
                os._exit(EXIT_MEMORY)
            if self.busy.is_set():
                time.sleep(_WATCH_INTERVAL_SECONDS)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing > 0:
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    size, _flags = HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        return None
    return _read_exact(fd, size)


def _write_frame(fd: int, payload: bytes, flags: int = 0) -> None:
    data = memoryview(HEADER.pack(len(payload), flags) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _ignore_unraisable(_unraisable: Any) -> None:
    """mini-racer reports late V8 callbacks as "Exception ignored" tracebacks; they would only spam the log."""


def main() -> None:
    """Serve requests on stdin/stdout until stdin closes. Never returns: the process ends with ``os._exit``.

    ``os._exit`` skips interpreter shutdown, where closing a MiniRacer from garbage collection can hang.
    """
    # The protocol gets private copies of stdin/stdout; fd 0 and 1 are pointed elsewhere, so a stray print (from
    # Python or from C) can never corrupt a frame.
    requests = os.dup(0)
    answers = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    sys.unraisablehook = _ignore_unraisable
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the engine; the engine ends its workers.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing isolate must not write core files
    watchdog = _Watchdog()
    watchdog.start()
    try:
        evaluator = Evaluator()
    except Exception as exc:
        _write_frame(answers, json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        os._exit(EXIT_STARTUP_FAILED)
    try:
        _write_frame(answers, b'{"ready":true}')
        while True:
            frame = _read_frame(requests)
            if frame is None:
                os._exit(0)
            watchdog.busy.set()
            try:
                answer, retire = evaluator.evaluate(json.loads(frame))
            finally:
                watchdog.busy.clear()
            if len(answer) > MAX_FRAME_BYTES:
                answer, retire = _answer("internal", "the result is too large"), True
            if _resident_bytes() > PROCESS_MEMORY_LIMIT_BYTES // 2:
                retire = True
            _write_frame(answers, answer, RETIRE if retire else 0)
            if retire:
                os._exit(0)
    except Exception:  # a broken pipe (the engine is gone) or a request that is not JSON: nothing to answer
        os._exit(1)


if __name__ == "__main__":
    main()
