"""A sandboxed JavaScript evaluator for ProcessCube expressions.

ProcessCube models carry JavaScript: sequence-flow conditions such as ``token.current.confirmed === "true"`` and
script tasks whose function body ``return``s the task's result. The embedded engine evaluates them here, in V8
(mini-racer), and never as Python: a model is untrusted input, and Python's ``eval`` would hand it the host.

How the sandbox holds:

- One V8 isolate per thread (``threading.local``). Creating one costs a few milliseconds, evaluating a compiled
  expression a fraction of one, so isolates are reused; that is safe because, before any model code runs, every
  intrinsic reachable from ``globalThis`` (``Object.prototype``, ``Array.prototype``, ``JSON``, ...) and
  ``globalThis`` itself are deep-frozen, and the host-ish extras (``setTimeout``, ``Atomics``, ``WebAssembly``,
  ``SharedArrayBuffer``, ``WeakRef``, ``FinalizationRegistry``) are removed. A script that writes to
  ``Object.prototype`` changes nothing (sloppy mode) or throws (strict mode); it cannot leave state behind for the
  next evaluation.
- No Python object crosses into JavaScript: the token goes in as a JSON string literal and is parsed inside V8; the
  result comes back as a JSON string.
- Every call has a timeout (``DEFAULT_TIMEOUT_SECONDS``) and the isolate a hard memory limit
  (``MEMORY_LIMIT_BYTES``). After a timeout, an out-of-memory or any failure outside of the script's own
  ``throw``, the isolate is thrown away and the next call gets a fresh one.
- Each distinct source text is compiled once per isolate (``new Function('token', ...)``) and the compiled function
  is frozen too, so a script cannot keep state on its own function object either.

A JavaScript exception, a syntax error, a timeout or the memory limit all surface as :class:`JsEvaluationError`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal

from py_mini_racer import MiniRacer

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

MEMORY_LIMIT_BYTES: Final = 64 * 1024 * 1024
"""Hard heap limit of one isolate; reaching it aborts the evaluation and discards the isolate."""

_MAX_CACHED_SOURCES: Final = 4096

_Mode = Literal["expression", "script"]


class JsEvaluationError(Exception):
    """A model's JavaScript could not be evaluated: it threw, did not compile, timed out or used too much memory."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Installed once per isolate, before any model code. Everything the runner needs is captured in the closure
# before the freeze, so model code can neither replace it nor reach the cache.
_BOOTSTRAP: Final = r"""
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


def _new_racer() -> MiniRacer:
    """Create an isolate on a thread without a running asyncio loop.

    mini-racer binds an isolate to the asyncio loop running in the creating thread, and then refuses timeouts when
    called from that loop. Creating it on a helper thread gives it its own loop thread, so calls from any thread
    (including synchronous calls made inside an async HTTP handler) get a working timeout.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="js-sandbox-init") as pool:
        racer: MiniRacer = pool.submit(MiniRacer).result()
    racer.set_hard_memory_limit(MEMORY_LIMIT_BYTES)
    racer.eval(_BOOTSTRAP)
    return racer


def _ignore_callback(*_args: object) -> None:
    return None


class _Sandbox:
    """One isolate plus the ids of the sources compiled into it."""

    def __init__(self) -> None:
        self.racer = _new_racer()
        self.ids: dict[tuple[_Mode, str], int] = {}
        _live_sandboxes.add(self)

    def close(self) -> None:
        _live_sandboxes.discard(self)
        with contextlib.suppress(Exception):  # best effort while discarding an isolate
            self.racer.close()

    def discard(self) -> None:
        """Close an isolate that failed.

        A terminated or out-of-memory evaluation leaves a late callback behind in V8, delivered when the isolate is
        freed, after its event loop has closed (mini-racer then prints an "Exception ignored" traceback). The
        isolate is being thrown away, so its callbacks are muted first. This reaches into mini-racer's private
        ``_ctx``; if that ever changes, the worst case is the traceback on stderr again.
        """
        ctx = getattr(self.racer, "_ctx", None)
        if ctx is not None:
            with contextlib.suppress(Exception):
                object.__setattr__(ctx, "handle_callback_from_v8", _ignore_callback)
        self.close()

    def call(self, source: str, mode: _Mode, token: Any, *, as_boolean: bool, timeout: float) -> Any:
        try:
            token_json = json.dumps(token, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise JsEvaluationError(f"the token is not JSON: {exc}") from exc
        key = (mode, source)
        if key not in self.ids and len(self.ids) >= _MAX_CACHED_SOURCES:
            self.racer.eval("__pcForget()")
            self.ids.clear()
        ident = self.ids.setdefault(key, len(self.ids))
        code = "__pcRun({}, {}, {}, {}, {})".format(
            ident,
            json.dumps(source),
            json.dumps(mode),
            json.dumps(token_json),
            "true" if as_boolean else "false",
        )
        started = time.monotonic()
        raw = self.racer.eval(code, timeout_sec=timeout)
        # mini-racer runs V8's microtask queue after an eval returns. A script may have queued work there
        # (``Promise.resolve().then(...)``, ``async`` functions): drain it now, inside this call's budget, so that it
        # can never run (or hang) during somebody else's evaluation.
        remaining = timeout - (time.monotonic() - started)
        self.racer.eval("0", timeout_sec=max(remaining, 0.001))
        if not isinstance(raw, str):
            raise JsEvaluationError("the JavaScript sandbox returned an unexpected value")
        answer = json.loads(raw)
        if not answer["ok"]:
            raise JsEvaluationError(str(answer["error"]))
        return answer["value"]


_live_sandboxes: weakref.WeakSet[_Sandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Close isolates while their event-loop threads still run; left to garbage collection at interpreter
    # shutdown, closing one can hang on a daemon thread that no longer runs.
    for sandbox in list(_live_sandboxes):
        sandbox.close()


class _State(threading.local):
    sandbox: _Sandbox | None = None


_state = _State()


def _call(source: str, mode: _Mode, token: Any, *, as_boolean: bool, timeout: float | None) -> Any:
    budget = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
    sandbox = _state.sandbox
    if sandbox is None:
        sandbox = _state.sandbox = _Sandbox()
    try:
        return sandbox.call(source, mode, token, as_boolean=as_boolean, timeout=budget)
    except JsEvaluationError:
        raise
    except Exception as exc:
        # Timeout, out of memory, termination or anything unexpected from the isolate: never reuse it.
        _state.sandbox = None
        sandbox.discard()
        if isinstance(exc, TimeoutError):
            raise JsEvaluationError(f"JavaScript evaluation timed out after {round(budget * 1000)} ms") from exc
        name = type(exc).__name__
        if "OOM" in name:
            raise JsEvaluationError("JavaScript evaluation exceeded the memory limit") from exc
        raise JsEvaluationError(f"JavaScript evaluation failed: {exc}") from exc


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
