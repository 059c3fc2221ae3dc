"""The JavaScript sandbox: ProcessCube conditions and scripts, and what a hostile script cannot do.

Hostile scripts end their own evaluation with :class:`JsEvaluationError`; the worker processes that run them are
killed from outside, stopped, crashed and orphaned here, and the next evaluation must work every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from embedded_engine import js
from embedded_engine.js import JsEvaluationError, evaluate_condition, evaluate_expression, run_script

TOKEN: dict[str, Any] = {
    "current": {"confirmed": "true", "genehmigen": False, "amount": 1500},
    "history": {"StartEvent_1": {"amount": 1500}},
}


def test_condition_compares_token_current_like_processcube_models() -> None:
    assert evaluate_condition('token.current.confirmed === "true"', TOKEN) is True
    assert evaluate_condition('token.current.confirmed === "false"', TOKEN) is False


def test_condition_result_is_javascript_truthiness() -> None:
    assert evaluate_condition("token.current.genehmigen", TOKEN) is False
    assert evaluate_condition("!token.current.genehmigen", TOKEN) is True
    assert evaluate_condition("token.current.amount", TOKEN) is True
    assert evaluate_condition("''", TOKEN) is False


def test_condition_may_be_a_function_body_with_return() -> None:
    assert evaluate_condition("const a = token.current.amount;\nreturn a > 1000;", TOKEN) is True


def test_condition_with_trailing_semicolon_is_still_an_expression() -> None:
    assert evaluate_condition("token.current.amount > 1000;", TOKEN) is True


def test_condition_reads_token_history() -> None:
    assert evaluate_condition("token.history.StartEvent_1.amount === 1500", TOKEN) is True


def test_empty_condition_is_no_condition_and_true() -> None:
    assert evaluate_condition("", TOKEN) is True
    assert evaluate_condition("  \n ", TOKEN) is True
    assert evaluate_condition(None, TOKEN) is True


def test_expression_returns_json_value() -> None:
    assert evaluate_expression("({total: token.current.amount * 2, tags: ['a']})", TOKEN) == {
        "total": 3000,
        "tags": ["a"],
    }
    assert evaluate_expression("undefined", TOKEN) is None


def test_script_return_value_is_the_result() -> None:
    assert run_script("return {doubled: token.current.amount * 2};", TOKEN) == {"doubled": 3000}


def test_script_without_return_yields_none() -> None:
    assert run_script("const x = 1;", TOKEN) is None


def test_script_that_throws_raises_evaluation_error_with_message() -> None:
    with pytest.raises(JsEvaluationError, match="boom"):
        run_script("throw new Error('boom');", TOKEN)


def test_reading_a_missing_property_chain_raises_type_error() -> None:
    with pytest.raises(JsEvaluationError, match="TypeError"):
        evaluate_condition("token.current.missing.deeper", TOKEN)


def test_syntax_error_raises_evaluation_error() -> None:
    with pytest.raises(JsEvaluationError, match="SyntaxError"):
        evaluate_condition("token.current.", TOKEN)


def test_infinite_loop_times_out() -> None:
    with pytest.raises(JsEvaluationError, match="timed out"):
        evaluate_condition("while(true){}", TOKEN, timeout=0.1)
    assert evaluate_condition("true", TOKEN) is True


def test_huge_allocation_is_stopped_and_later_evaluations_work() -> None:
    with pytest.raises(JsEvaluationError):
        run_script("const a = []; while (true) { a.push(new Array(100000).fill(1)); }", TOKEN, timeout=5)
    assert evaluate_condition("token.current.amount === 1500", TOKEN) is True


def test_constructor_escape_cannot_reach_the_host() -> None:
    with pytest.raises(JsEvaluationError, match="ReferenceError"):
        evaluate_expression('this.constructor.constructor("return process")()', TOKEN)
    with pytest.raises(JsEvaluationError, match="ReferenceError"):
        evaluate_expression('(() => {}).constructor("return require")()("os")', TOKEN)
    assert evaluate_expression("typeof setTimeout === 'function' ? 'x' : typeof Atomics", TOKEN) in (
        "x",
        "undefined",
    )


def test_python_objects_are_not_reachable_from_javascript() -> None:
    names = evaluate_expression("Object.getOwnPropertyNames(globalThis)", TOKEN)
    assert isinstance(names, list)
    assert not [n for n in names if "py" in n.lower() or n in ("process", "require", "os")]


def test_mutating_object_prototype_does_not_affect_the_next_evaluation() -> None:
    evaluate_condition("(Object.prototype.polluted = 1, Array.prototype.includes = null, true)", TOKEN)
    assert evaluate_condition("({}).polluted === undefined && typeof [].includes === 'function'", TOKEN)


def test_defining_on_frozen_intrinsics_throws() -> None:
    with pytest.raises(JsEvaluationError, match="TypeError"):
        run_script("'use strict'; Object.prototype.x = 1;", TOKEN)


def test_globals_written_by_one_script_are_invisible_to_the_next() -> None:
    run_script("leaked = 42; globalThis.other = 1; return 1;", TOKEN)
    assert evaluate_expression("typeof leaked + ',' + typeof other", TOKEN) == "undefined,undefined"


def test_replacing_json_parse_does_not_break_token_passing() -> None:
    evaluate_condition("(JSON.parse = () => 1, true)", TOKEN)
    assert evaluate_expression("token.current.amount", TOKEN) == 1500


def test_queued_microtask_cannot_hang_a_later_evaluation() -> None:
    with pytest.raises(JsEvaluationError, match="timed out"):
        run_script("Promise.resolve().then(() => { while (true) {} }); return 1;", TOKEN, timeout=0.1)
    assert evaluate_condition("true", TOKEN) is True


def test_token_must_be_json() -> None:
    with pytest.raises(JsEvaluationError, match="JSON"):
        evaluate_condition("true", {"current": object(), "history": {}})


# -- hostile scripts: each ends its own evaluation with a JsEvaluationError, the next evaluation works ---------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("while(true){}", "timed out"),
        ("for(;;){ try { while(true){} } finally { continue; } }", "timed out"),
        ("const a = []; while (true) a.push(new Array(1e6).fill(1));", "memory limit"),
        ("const a = []; while (true) a.push(new Uint8Array(1e7).fill(1));", "memory limit"),
        ("function f() { return f(); } return f();", "RangeError"),
        ("throw new Error('hostile');", "Error: hostile"),
        ("throw {toString() { while (true) {} }};", "Uncaught|timed out"),
        ("return (", "SyntaxError"),
        ("let a = []; for (let i = 0; i < 1e4; i++) a = [a]; return a;", "nested too deeply|RangeError"),
        ("async function f() { while (true) await 0; } f(); return 1;", "timed out"),
        ("function f() { Promise.resolve().then(f); } f(); return 1;", "timed out"),
    ],
    ids=[
        "loop",
        "loop-that-resists",
        "heap",
        "array-buffers",
        "recursion",
        "throw",
        "throw-hostile-object",
        "syntax",
        "deep-result",
        "async-loop",
        "promise-chain",
    ],
)
def test_hostile_script_fails_only_its_own_evaluation(source: str, expected: str) -> None:
    with pytest.raises(JsEvaluationError, match=expected):
        run_script(source, TOKEN, timeout=1.0)
    assert evaluate_condition("token.current.amount === 1500", TOKEN) is True


def test_pollution_before_a_timeout_does_not_reach_the_next_evaluation() -> None:
    with pytest.raises(JsEvaluationError, match="timed out"):
        run_script("Object.prototype.polluted = 1; globalThis.leaked = 1; while (true) {}", TOKEN, timeout=0.05)
    assert evaluate_expression("typeof ({}).polluted + ',' + typeof leaked", TOKEN) == "undefined,undefined"


def test_the_same_source_works_again_after_it_timed_out() -> None:
    source = "if (token.current.spin) { while (true) {} } return token.current.amount;"
    with pytest.raises(JsEvaluationError, match="timed out"):
        run_script(source, {"current": {"spin": True, "amount": 1}}, timeout=0.05)
    assert run_script(source, {"current": {"spin": False, "amount": 2}}) == 2


def test_five_hundred_timeouts_in_a_row_then_a_normal_evaluation() -> None:
    for _ in range(500):
        with pytest.raises(JsEvaluationError, match="timed out after 20 ms"):
            evaluate_condition("while(true){}", TOKEN, timeout=0.02)
    assert evaluate_condition('token.current.confirmed === "true"', TOKEN) is True
    assert len(js._pool.worker_pids()) <= js._MAX_WORKERS


# -- worker processes ------------------------------------------------------------------------------------------


def next_worker() -> int:
    """The pid of the worker the next evaluation will use (warm: it has just evaluated something)."""
    assert evaluate_condition("true", TOKEN) is True
    return js._pool.worker_pids()[0]


def wait_for_exit(pid: int) -> None:
    """Block until our child ``pid`` has ended, without reaping it (the pool's ``Popen`` still does that)."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gone(pid: int) -> bool:
    """``pid`` no longer runs (it may be a zombie of a parent that does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_worker_killed_while_idle_is_replaced_without_failing_anyone() -> None:
    pid = next_worker()
    os.kill(pid, signal.SIGKILL)
    wait_for_exit(pid)
    assert evaluate_condition("token.current.amount === 1500", TOKEN) is True
    assert pid not in js._pool.worker_pids()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT])
def test_a_worker_dying_mid_evaluation_fails_that_evaluation_and_is_replaced(sig: signal.Signals) -> None:
    pid = next_worker()
    before = cpu_seconds(pid)
    outcome: list[BaseException] = []

    def spin() -> None:
        try:
            run_script("while (true) {}", TOKEN, timeout=30)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=spin)
    thread.start()
    while cpu_seconds(pid) - before < 0.05:  # the loop is running in that worker
        time.sleep(0.01)
    os.kill(pid, sig)
    thread.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], JsEvaluationError)
    assert f"crashed the sandbox process (killed by {sig.name}" in outcome[0].message
    assert evaluate_condition("token.current.amount === 1500", TOKEN) is True


def test_a_wedged_worker_is_killed_at_the_engines_own_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(js, "_GRACE_SECONDS", 0.2)
    pid = next_worker()
    os.kill(pid, signal.SIGSTOP)  # it can no longer enforce its own timeout, nor answer
    with pytest.raises(JsEvaluationError, match="timed out after 50 ms"):
        evaluate_condition("true", TOKEN, timeout=0.05)
    assert pid not in js._pool.worker_pids()
    assert gone(pid)
    assert evaluate_condition("token.current.amount === 1500", TOKEN) is True


def test_concurrent_calls_from_several_threads_each_get_their_own_answer() -> None:
    threads = 8
    barrier = threading.Barrier(threads)

    def work(n: int) -> list[Any]:
        barrier.wait()
        results: list[Any] = []
        for i in range(25):
            if (n + i) % 5 == 0:
                with pytest.raises(JsEvaluationError, match="timed out"):
                    evaluate_condition("while(true){}", TOKEN, timeout=0.02)
            results.append(evaluate_expression("token.n * 1000 + token.i", {"n": n, "i": i}))
        return results

    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(work, range(threads)))
    assert answers == [[n * 1000 + i for i in range(25)] for n in range(threads)]
    assert len(js._pool.worker_pids()) <= js._MAX_WORKERS


def test_workers_write_nothing_to_the_engines_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(JsEvaluationError, match="timed out"):
        evaluate_condition("while(true){}", TOKEN, timeout=0.02)
    with pytest.raises(JsEvaluationError, match="memory limit"):
        run_script("const a = []; while (true) a.push(new Array(1e6).fill(1));", TOKEN, timeout=5)
    pid = next_worker()
    os.kill(pid, signal.SIGSEGV)
    wait_for_exit(pid)
    assert evaluate_condition("true", TOKEN) is True
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_closing_the_pool_ends_its_workers_and_refuses_further_work(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = js._Pool()
    monkeypatch.setattr(js, "_pool", pool)
    assert evaluate_condition("true", TOKEN) is True
    pids = pool.worker_pids()
    assert len(pids) == 1 + js._SPARE_WORKERS
    pool.close()
    assert all(gone(pid) for pid in pids)
    with pytest.raises(JsEvaluationError, match="shut down"):
        evaluate_condition("true", TOKEN)


@pytest.mark.parametrize("executable", ["/bin/false", "/nonexistent/python"], ids=["exits", "missing"])
def test_a_worker_that_cannot_start_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch, executable: str) -> None:
    pool = js._Pool()
    monkeypatch.setattr(js, "_pool", pool)
    monkeypatch.setattr(sys, "executable", executable)
    try:
        with pytest.raises(JsEvaluationError, match="could not start"):
            evaluate_condition("true", TOKEN)
    finally:
        pool.close()


WORKER_PARENT = """
import sys, threading
from embedded_engine import js
js.evaluate_condition("true", {})
print(*js._pool.worker_pids(), flush=True)
js.run_script("while (true) {}", {}, timeout=600)
"""


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_workers_end_when_the_engine_process_dies(busy: bool) -> None:
    script = WORKER_PARENT if busy else WORKER_PARENT.replace("js.run_script", "sys.stdin.read() or js.run_script")
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
        if busy:
            before = cpu_seconds(pids[0])
            while cpu_seconds(pids[0]) - before < 0.05:
                time.sleep(0.01)
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdin is not None
        assert parent.stdout is not None
        parent.stdin.close()
        parent.stdout.close()
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)
