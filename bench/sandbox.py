"""What the JavaScript sandbox's worker processes cost, side by side with the old in-process isolate.

    python -m bench.sandbox [--samples 2000] [--rounds 5] [--timeouts 200] [--kills 10]

- **Per evaluation**: the same small condition (``token.current.amount > 1000 && token.current.confirmed``),
  evaluated by a bare MiniRacer isolate in this process with the sandbox's bootstrap (the old design: JSON in,
  ``__pcRun``, microtask drain, JSON out) and through :func:`embedded_engine.js.evaluate_condition` (a worker
  process over pipes). Interleaved rounds, so drift on the machine hits both alike; p50 and mean in microseconds,
  and the ratio worker / in-process.
- **Timeout, recovered in the worker**: ``while(true){}`` with a 20 ms budget, back to back. The worker keeps its
  isolate after a timeout, so the cost is the budget plus a garbage collection, a probe and the round trip.
- **Timeout, kill + replace**: the worker is wedged (``SIGSTOP``, so it can neither time out on its own nor
  answer) and the engine's deadline kills it (``SIGKILL``) and moves to the spare. Measured from the call until the
  next evaluation has answered, minus the budget and grace; with the engine's grace (longer than a start-up, so
  the spare is ready) and with no grace at all (kills faster than replacements start: the start-up is on the path).
- **Worker start-up**: a fresh worker process until its isolate is ready.

Numbers are for reading, not for asserting: nothing here fails on a threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable

from embedded_engine import js
from embedded_engine.js_worker import Evaluator

CONDITION = "token.current.amount > 1000 && token.current.confirmed === 'true'"
TOKEN = {"current": {"confirmed": "true", "amount": 1500}, "history": {"StartEvent_1": {"amount": 1500}}}
TIMEOUT_BUDGET = 0.02


def in_process(evaluator: Evaluator) -> Callable[[], object]:
    """The old design's path for one condition: everything but the isolate's creation."""

    def evaluate() -> object:
        token_json = json.dumps(TOKEN, separators=(",", ":"), allow_nan=False)
        request = {"source": CONDITION, "mode": "expression", "token": token_json, "asBoolean": True, "timeout": 0.2}
        answer, _retire = evaluator.evaluate(request)
        decoded = json.loads(answer)
        if decoded != {"ok": True, "value": True}:
            raise RuntimeError(f"unexpected answer {decoded!r}")
        return decoded["value"]

    return evaluate


def through_worker() -> object:
    if js.evaluate_condition(CONDITION, TOKEN) is not True:
        raise RuntimeError("unexpected answer")
    return True


def sample(function: Callable[[], object], count: int) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        function()
        times.append((time.perf_counter_ns() - started) / 1000)
    return times


def timed_out(function: Callable[[], object]) -> None:
    try:
        function()
    except js.JsEvaluationError as exc:
        if "timed out" not in exc.message:
            raise
    else:
        raise RuntimeError("expected a timeout")


def timeouts_in_worker(count: int) -> list[float]:
    """Wall time of each timed-out evaluation minus its budget, in microseconds."""
    times = sample(
        lambda: timed_out(lambda: js.evaluate_condition("while(true){}", TOKEN, timeout=TIMEOUT_BUDGET)), count
    )
    return [t - TIMEOUT_BUDGET * 1e6 for t in times]


def kills(count: int, grace: float) -> list[float]:
    """From a call to a wedged worker until the next evaluation answered, minus budget and grace, in microseconds.

    ``grace`` replaces the engine's :data:`~embedded_engine.js._GRACE_SECONDS` for the series: with the default
    (longer than a worker's start-up) the spare is ready when the kill comes; with 0 the kills come faster than
    replacements start, and the start-up is on the path.
    """
    default = js._GRACE_SECONDS
    setattr(js, "_GRACE_SECONDS", grace)  # noqa: B010 (a Final constant, changed for this series only)
    try:
        overheads: list[float] = []
        for _ in range(count):
            through_worker()  # the worker the next call takes is now the first in worker_pids()
            os.kill(js._pool.worker_pids()[0], signal.SIGSTOP)
            started = time.perf_counter_ns()
            timed_out(lambda: js.evaluate_condition("true", TOKEN, timeout=TIMEOUT_BUDGET))
            through_worker()
            elapsed = (time.perf_counter_ns() - started) / 1000
            overheads.append(elapsed - (TIMEOUT_BUDGET + grace) * 1e6)
        return overheads
    finally:
        setattr(js, "_GRACE_SECONDS", default)  # noqa: B010


def startups(count: int) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        worker = js._Worker()
        try:
            worker.start_up()
            times.append((time.perf_counter_ns() - started) / 1000)
        finally:
            worker.close(timeout=5.0)
    return times


def row(label: str, times: list[float], unit: str = "us") -> str:
    scale = 1000.0 if unit == "ms" else 1.0
    p50 = statistics.median(times) / scale
    mean = statistics.fmean(times) / scale
    return f"| {label:<68} | {p50:>10.1f} {unit} | {mean:>10.1f} {unit} | {len(times):>6} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="evaluations per design and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (in-process, worker, ...)")
    parser.add_argument("--timeouts", type=int, default=200, help="timed-out evaluations in a row")
    parser.add_argument("--kills", type=int, default=10, help="wedged workers killed, per series")
    args = parser.parse_args(argv)

    import py_mini_racer

    version = getattr(py_mini_racer, "__version__", None) or _dist_version()
    print(f"mini-racer {version}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, ", end="")
    print(f"load average {os.getloadavg()[0]:.2f}")

    evaluator = Evaluator()
    local = in_process(evaluator)
    for function in (local, through_worker):  # warm-up: compile caches, JIT, worker start-up
        sample(function, 200)
    local_times: list[float] = []
    worker_times: list[float] = []
    for _ in range(args.rounds):
        local_times += sample(local, args.samples)
        worker_times += sample(through_worker, args.samples)

    timeout_times = timeouts_in_worker(args.timeouts)
    warm_kills = kills(args.kills, grace=js._GRACE_SECONDS)
    cold_kills = kills(args.kills, grace=0.0)
    startup_times = startups(5)

    print()
    print(f"| {'measurement':<68} | {'p50':>13} | {'mean':>13} | {'n':>6} |")
    print(f"|{'-' * 70}|{'-' * 15}|{'-' * 15}|{'-' * 8}|")
    print(row("condition, in-process isolate (old design)", local_times))
    print(row("condition, through a worker process", worker_times))
    ratio_p50 = statistics.median(worker_times) / statistics.median(local_times)
    ratio_mean = statistics.fmean(worker_times) / statistics.fmean(local_times)
    print(f"| {'worker / in-process':<68} | {ratio_p50:>12.2f}x | {ratio_mean:>12.2f}x | {'':>6} |")
    budget_ms = round(TIMEOUT_BUDGET * 1000)
    print(row(f"timeout ({budget_ms} ms budget) recovered in the worker: past budget", timeout_times, "ms"))
    grace = f"{js._GRACE_SECONDS:.1f} s"
    print(row(f"wedged worker, kill + replace ({grace} grace): past budget+grace", warm_kills, "ms"))
    print(row("wedged worker, kill + replace (no grace): past budget", cold_kills, "ms"))
    print(row("worker start-up (process + mini-racer + isolate + bootstrap)", startup_times, "ms"))
    total = (sum(timeout_times) / 1e6) + args.timeouts * TIMEOUT_BUDGET
    print()
    print(f"{args.timeouts} timed-out evaluations in a row took {total:.2f} s ({budget_ms} ms budget each).")
    print(f"Grace before the engine kills a worker that does not answer: {js._GRACE_SECONDS:.1f} s.")
    sys.stdout.flush()
    js._pool.close()
    os._exit(0)  # skip interpreter shutdown: the in-process isolate's close can hang there (see js_worker.main)


def _dist_version() -> str:
    from importlib.metadata import version

    return version("mini-racer")


if __name__ == "__main__":
    sys.exit(main())
