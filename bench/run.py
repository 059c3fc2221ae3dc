"""``python -m bench``: every figure of the benchmark issue, measured side by side in one run, printed as one table.

Processes (each its own, on free loopback ports; the machine has few cores, so nothing else should run):

- three embedded engines: one holding 1,000 suspended "Approve order" tasks, one holding 100,000 (both seeded
  in-process once and kept under ``.data/bench/``, see :mod:`bench.seed`), and a fresh one for writes;
- four gateways (``python -m gateway`` configured by environment only): uncached (``GATEWAY_CACHE_TTL_SECONDS=0``)
  and cached (the default 2 s) in front of the 1,000-task engine, uncached in front of the 100,000-task engine,
  default settings in front of the fresh engine;
- the load generator (:mod:`bench.load`, aiohttp), driven over a pipe; the seed-style client loops
  (``UserTaskClient``) run in this orchestrating process, which serves nothing.

Every answer is checked while it is measured; the first wrong one aborts the run (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.core.service import ServiceLimits
from gateway.engine import UserTaskClient

from . import queries
from .load import WrongAnswer, check_answer, percentile
from .report import MISS, PASS, Row, load_average, machine, ms, now, ratio, render, update_readme, verdict
from .seed import APPROVAL_BPMN, MODEL_ID, ensure_seeded, token_of
from .servers import REPO, Engine, Gateway

DATA = REPO / ".data" / "bench"
SMALL, LARGE = 1_000, 100_000
PAGE = 50
FINISH_RESULT = {"approved": True, "comment": "bench"}
SCAN_PAGE_SIZE = ServiceLimits().scan_page_size  # candidates the gateway reads per engine call (residual filters)
COMMAND = "make bench (= .venv/bin/python -m bench)"


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class BenchFailure(SystemExit):
    """A wrong answer or a broken server: the run is void."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: FAILED: {message}")


@dataclass(frozen=True)
class Timing:
    """Settings of one run (``--quick`` shrinks them for development; the table says which were used)."""

    samples: int = 600  # requests per latency series at one connection (split into interleaved rounds)
    rounds: int = 6
    series_cap: float = 24.0  # seconds at most per latency series
    memory_connections: int = 10
    seconds: float = 3.0  # per throughput measurement
    warmup: float = 1.0
    batch_rounds: int = 3
    engine_instances: int = 150

    @classmethod
    def quick(cls) -> Timing:
        return cls(samples=150, rounds=1, series_cap=5.0, seconds=1.0, warmup=0.3, batch_rounds=1, engine_instances=40)


class LoadGenerator:
    """The load generator process; one JSON spec in, one JSON result out."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.load"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def measure(self, what: str, spec: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(spec) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise BenchFailure(f"{what}: the load generator died (exit {self._process.poll()})")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise BenchFailure(f"{what}: {result['error']}")
        return result

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@dataclass
class Lab:
    small: Engine
    large: Engine
    work: Engine
    uncached: Gateway
    cached: Gateway
    large_gateway: Gateway
    work_gateway: Gateway
    load: LoadGenerator
    timing: Timing


@contextmanager
def lab(timing: Timing) -> Iterator[Lab]:
    logs = DATA / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    for tasks in (SMALL, LARGE):
        progress(f"checking the seeded data directory with {tasks:,} tasks")
        seeded, seconds = ensure_seeded(DATA / f"seed-{tasks}", tasks)
        if seeded:
            progress(f"seeded {tasks:,} tasks in {seconds:.0f} s (kept in .data/bench/seed-{tasks} for next time)")
    work_dir = DATA / "work"
    shutil.rmtree(work_dir, ignore_errors=True)
    started: list[Engine | Gateway] = []
    load: LoadGenerator | None = None
    try:
        progress("starting engines, gateways and the load generator")
        small = Engine("engine-1k", logs, data_dir=DATA / f"seed-{SMALL}").start()
        started.append(small)
        large = Engine("engine-100k", logs, data_dir=DATA / f"seed-{LARGE}").start()
        started.append(large)
        work = Engine("engine-work", logs, data_dir=work_dir).start()
        started.append(work)
        gateways: list[Gateway] = []
        for name, engine, env in (
            ("gateway-uncached", small, {"GATEWAY_CACHE_TTL_SECONDS": "0"}),
            ("gateway-cached", small, {}),
            ("gateway-100k", large, {"GATEWAY_CACHE_TTL_SECONDS": "0"}),
            ("gateway-work", work, {}),
        ):
            gateway = Gateway(name, logs, engine_url=engine.url, env=env).start()
            started.append(gateway)
            gateways.append(gateway)
        load = LoadGenerator()
        uncached, cached, large_gateway, work_gateway = gateways
        yield Lab(small, large, work, uncached, cached, large_gateway, work_gateway, load=load, timing=timing)
    finally:
        if load is not None:
            load.close()
        for server in reversed(started):
            server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------------------------


def series(
    load: LoadGenerator, timing: Timing, named: dict[str, tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, list[float]]:
    """Latencies at one connection of several requests, measured side by side: interleaved rounds after a warm-up.

    Each series gets ``timing.samples`` requests, or fewer when it would take longer than ``timing.series_cap``
    seconds (a slow engine); the table then shows how many (``n=``).
    """
    latencies: dict[str, list[float]] = {name: [] for name in named}
    per_round = max(1, timing.samples // timing.rounds)
    for name, (request, check) in named.items():
        spec = {"requests": [request], "check": check, "connections": 1, "duration": timing.warmup}
        load.measure(f"warm-up {name}", spec)
    for _ in range(timing.rounds):
        for name, (request, check) in named.items():
            spec = {
                "requests": [request],
                "check": check,
                "connections": 1,
                "count": per_round,
                "duration": timing.series_cap / timing.rounds,
                "raw": True,
            }
            latencies[name].extend(load.measure(name, spec)["latencies_ms"])
    return latencies


def p50(values: Sequence[float]) -> float:
    return percentile(sorted(values), 0.50)


def p99(values: Sequence[float]) -> float:
    return percentile(sorted(values), 0.99)


def both(values: Sequence[float], timing: Timing) -> str:
    text = f"{ms(p50(values))} / {ms(p99(values))}"
    return text if len(values) >= timing.samples - timing.rounds else f"{text} (n={len(values)})"


def http_check(response: httpx.Response, check: dict[str, Any], what: str) -> Any:
    try:
        return check_answer(response.status_code, response.content, check)
    except WrongAnswer as exc:
        raise BenchFailure(f"{what}: wrong answer: {exc}") from exc


def engine_total(engine: Engine, **filters: str) -> int:
    request = queries.engine_page_request(engine.url, 1, **filters)
    response = httpx.get(request["url"], headers=request["headers"], timeout=60)
    body = http_check(response, {}, "count tasks")
    return int(body["totalCount"])


def first_task_ids(engine: Engine, count: int) -> list[str]:
    request = queries.engine_page_request(engine.url, count, processModelId=MODEL_ID)
    response = httpx.get(request["url"], headers=request["headers"], timeout=60)
    body = http_check(response, queries.engine_page_check(count), "read task ids")
    return [str(item["flowNodeInstanceId"]) for item in body["flowNodeInstances"]]


def calls_of(gateway: Gateway, action: Callable[[], object]) -> int:
    before = gateway.engine_calls()
    action()
    return gateway.engine_calls() - before


# -- 1. gateway tax --------------------------------------------------------------------------------------------


def gateway_tax(lab: Lab) -> list[Row]:
    progress("1. gateway tax")
    latencies = series(
        lab.load,
        lab.timing,
        {
            "engine": (queries.engine_page_request(lab.small.url, PAGE), queries.engine_page_check(PAGE, SMALL)),
            "uncached": (queries.list_request(lab.uncached.graphql_url, PAGE), queries.list_check(PAGE, SMALL)),
            "cached": (queries.list_request(lab.cached.graphql_url, PAGE), queries.list_check(PAGE, SMALL)),
        },
    )
    engine, uncached, cached = latencies["engine"], latencies["uncached"], latencies["cached"]
    rows = [
        Row("1", f"engine GET /flow_node_instances, page of {PAGE}: p50 / p99", both(engine, lab.timing)),
        Row("1", f"gateway userTasks(first: {PAGE}), uncached: p50 / p99", both(uncached, lab.timing)),
        Row("1", f"gateway userTasks(first: {PAGE}), cached: p50 / p99", both(cached, lab.timing)),
    ]
    limits: tuple[tuple[str, list[float], str, float, bool], ...] = (
        ("uncached", uncached, "<= 1.5x", 1.5, True),
        ("cached", cached, "< 1x", 1.0, False),
    )
    for name, values, target, bound, inclusive in limits:
        for label, pick in (("p50", p50), ("p99", p99)):
            value = pick(values) / pick(engine)
            ok = value <= bound if inclusive else value < bound
            rows.append(Row("1", f"gateway {name} / engine, {label}", ratio(value), target, verdict(ok)))
    return rows


# -- 2. concurrency --------------------------------------------------------------------------------------------


def rest_available(gateway: Gateway) -> str | None:
    """None when GET /api/v1/user-tasks answers a right page, else why not."""
    request = queries.rest_page_request(gateway.url, PAGE)
    try:
        response = httpx.get(request["url"], headers=request["headers"], timeout=30)
        check_answer(response.status_code, response.content, queries.rest_page_check(PAGE, SMALL))
    except (httpx.HTTPError, WrongAnswer) as exc:
        return str(exc)[:80]
    return None


def concurrency(lab: Lab) -> list[Row]:
    progress("2. concurrency")
    faces: list[tuple[str, Callable[[], tuple[dict[str, Any], dict[str, Any]]] | None, bool]] = [
        (
            "engine GET /flow_node_instances (reference)",
            lambda: (queries.engine_page_request(lab.small.url, PAGE), queries.engine_page_check(PAGE, SMALL)),
            False,
        ),
    ]
    for name, gateway in (("uncached", lab.uncached), ("cached", lab.cached)):
        faces.append(
            (
                f"GraphQL userTasks(first: {PAGE}), {name}",
                lambda gateway=gateway: (  # type: ignore[misc]
                    queries.list_request(gateway.graphql_url, PAGE),
                    queries.list_check(PAGE, SMALL),
                ),
                True,
            )
        )
    rest_problem = rest_available(lab.uncached)
    for name, gateway in (("uncached", lab.uncached), ("cached", lab.cached)):
        faces.append(
            (
                f"REST GET /api/v1/user-tasks?limit={PAGE}, {name}",
                None
                if rest_problem
                else lambda gateway=gateway: (  # type: ignore[misc]
                    queries.rest_page_request(gateway.url, PAGE),
                    queries.rest_page_check(PAGE, SMALL),
                ),
                True,
            )
        )
    rows: list[Row] = []
    levels = (1, 10, 50)
    for name, make, judged in faces:
        if make is None:
            rows.append(Row("2", f"{name}: req/s at 1 / 10 / 50", f"REST: not available ({rest_problem})", "", "n/a"))
            continue
        request, check = make()
        results = {}
        for connections in levels:
            results[connections] = lab.load.measure(
                f"{name} at {connections}",
                {
                    "requests": [request],
                    "check": check,
                    "connections": connections,
                    "duration": lab.timing.seconds,
                    "warmup": lab.timing.warmup / 2,
                },
            )
        rates = " / ".join(f"{results[level]['rps']:.0f}" for level in levels)
        holds = results[50]["rps"] >= results[1]["rps"]
        rows.append(
            Row(
                "2",
                f"{name}: req/s at 1 / 10 / 50",
                rates,
                "50 >= 1" if judged else "",
                verdict(holds) if judged else "",
            )
        )
        spread = results[50]["p99_ms"] / results[1]["p50_ms"]
        # Little's law: 50 requests always in flight at `rps` per second wait 50 / rps on average; no p99 is lower.
        floor = 50 / results[50]["rps"] * 1000 / results[1]["p50_ms"]
        detail = (
            f"{ratio(spread)} ({ms(results[50]['p99_ms'])} vs {ms(results[1]['p50_ms'])};"
            f" Little's law floor {ratio(floor)})"
        )
        rows.append(
            Row(
                "2",
                f"{name}: p99 at 50 / p50 at 1",
                detail,
                "<= 10x" if judged else "",
                verdict(spread <= 10) if judged else "",
            )
        )
    return rows


# -- 3. work saved ---------------------------------------------------------------------------------------------


def work_saved(lab: Lab) -> list[Row]:
    progress("3. work saved (engine calls)")
    rows: list[Row] = []

    def one(gateway: Gateway, request: dict[str, Any], check: dict[str, Any], what: str) -> None:
        lab.load.measure(what, {"requests": [request], "check": check, "connections": 1, "count": 1})

    page_calls = calls_of(
        lab.uncached,
        lambda: one(
            lab.uncached, queries.list_request(lab.uncached.graphql_url, PAGE), queries.list_check(PAGE), "page"
        ),
    )
    rows.append(Row("3", f"engine calls: one page of {PAGE}", str(page_calls), "1", verdict(page_calls == 1)))

    ids = first_task_ids(lab.small, PAGE)
    lookups = queries.graphql_request(lab.uncached.graphql_url, queries.lookups_query(ids))
    lookup_check: dict[str, Any] = {
        "asserts": [
            {"path": ["data"], "length": PAGE, "non_null": True},
            *({"path": ["data", f"t{index}", "id"], "equals": task_id} for index, task_id in enumerate(ids)),
        ]
    }
    lookup_calls = calls_of(lab.uncached, lambda: one(lab.uncached, lookups, lookup_check, "lookups"))
    rows.append(
        Row(
            "3",
            f"engine calls: {PAGE} userTask(id) lookups in one request",
            str(lookup_calls),
            "1",
            verdict(lookup_calls == 1),
        )
    )

    # A filter no other measurement uses: nothing of it is cached yet.
    identical = queries.list_request(lab.cached.graphql_url, PAGE, {"processModelId": [MODEL_ID]})
    concurrent_calls = calls_of(
        lab.cached,
        lambda: lab.load.measure(
            "20 identical queries",
            {"requests": [identical], "check": queries.list_check(PAGE, SMALL), "connections": 20, "count": 20},
        ),
    )
    rows.append(
        Row(
            "3",
            "engine calls: 20 identical concurrent queries",
            str(concurrent_calls),
            "1",
            verdict(concurrent_calls == 1),
        )
    )

    needle = 777
    predicate = queries.list_request(
        lab.uncached.graphql_url,
        PAGE,
        {"processModelId": [MODEL_ID], "token": [{"path": "amount", "op": "EQ", "value": needle}]},
    )
    predicate_check: dict[str, Any] = {
        "asserts": [
            *queries.list_check(1, 1)["asserts"],
            {"path": ["data", "userTasks", "nodes", 0, "token", "amount"], "equals": needle},
        ]
    }
    residual_calls = calls_of(lab.uncached, lambda: one(lab.uncached, predicate, predicate_check, "token predicate"))
    bound = math.ceil(SMALL / SCAN_PAGE_SIZE)
    rows.append(
        Row(
            "3",
            f"engine calls: token predicate matching 1 task in {SMALL:,}",
            f"{residual_calls} (1 match)",
            f"<= ceil({SMALL:,}/{SCAN_PAGE_SIZE}) = {bound}",
            verdict(residual_calls <= bound),
        )
    )
    return rows


# -- 4. batching -----------------------------------------------------------------------------------------------


async def _batching(lab: Lab, items: int) -> list[Row]:
    async with UserTaskClient(lab.work.url) as client, httpx.AsyncClient(timeout=120) as http:
        await client.deploy_process(APPROVAL_BPMN.read_text(encoding="utf-8"))
        counter = 0

        async def fresh(count: int) -> list[str]:
            nonlocal counter
            correlation = f"bench-{uuid.uuid4()}"
            gate = asyncio.Semaphore(8)

            async def start() -> None:
                nonlocal counter
                async with gate:
                    counter += 1
                    await client.start_process_instance(
                        MODEL_ID, correlation_id=correlation, initial_token=token_of(counter)
                    )

            await asyncio.gather(*(start() for _ in range(count)))
            tasks = await client.get_user_tasks(correlation_id=correlation, flow_node_id="approveOrder")
            if len(tasks) != count:
                raise BenchFailure(f"batching: {len(tasks)} fresh tasks instead of {count}")
            return [str(task["userTaskInstanceId"]) for task in tasks]

        async def all_finished(ids: list[str], what: str) -> None:
            tasks = await client.get_user_tasks_by_ids(ids)
            states = [task["state"] for task in tasks]
            if len(states) != len(ids) or any(state != "finished" for state in states):
                raise BenchFailure(f"{what}: not every task finished ({states.count('finished')} of {len(ids)})")

        async def sequential(ids: list[str]) -> None:
            for task_id in ids:
                await client.finish_user_task(task_id, FINISH_RESULT)

        async def gathered(ids: list[str]) -> None:
            await asyncio.gather(*(client.finish_user_task(task_id, FINISH_RESULT) for task_id in ids))

        async def batch(ids: list[str]) -> None:
            payload = {
                "query": queries.FINISH_MANY,
                "variables": {"items": [{"id": i, "result": FINISH_RESULT} for i in ids]},
            }
            response = await http.post(lab.work_gateway.graphql_url, json=payload)
            check = {"asserts": [{"path": ["data", "finishUserTasks"], "length": len(ids), "non_null": True}]}
            body = http_check(response, check, "finishUserTasks")
            kinds = {item["__typename"] for item in body["data"]["finishUserTasks"]}
            if kinds != {"FinishedUserTask"}:
                raise BenchFailure(f"finishUserTasks answered {sorted(kinds)}, not only FinishedUserTask")

        variants: dict[str, Callable[[list[str]], Any]] = {
            "sequential": sequential,
            "gather": gathered,
            "batch": batch,
        }
        for name, run in variants.items():  # warm-up: connections, parser caches, the engine's model
            ids = await fresh(10)
            await run(ids)
            await all_finished(ids, f"warm-up {name}")
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        calls: list[int] = []
        for _ in range(lab.timing.batch_rounds):
            for name, run in variants.items():
                ids = await fresh(items)
                before = lab.work_gateway.engine_calls() if name == "batch" else 0
                started = time.perf_counter()
                await run(ids)
                seconds[name].append(time.perf_counter() - started)
                if name == "batch":
                    calls.append(lab.work_gateway.engine_calls() - before)
                await all_finished(ids, name)
    median = {name: sorted(values)[len(values) // 2] for name, values in seconds.items()}

    def took(name: str) -> str:
        return f"{median[name]:.2f} s ({items / median[name]:.0f} tasks/s)"

    speedup = median["sequential"] / median["batch"]
    return [
        Row("4", f"{items} finishes, sequential finish_user_task (seed style)", took("sequential")),
        Row("4", f"{items} finishes, asyncio.gather of finish_user_task (seed style)", took("gather")),
        Row("4", f"{items} finishes, one finishUserTasks request (gateway)", took("batch")),
        Row("4", "engine calls of that one finishUserTasks request", str(sorted(calls)[len(calls) // 2])),
        Row("4", "sequential / finishUserTasks", ratio(speedup), ">= 5x", verdict(speedup >= 5)),
        Row("4", "asyncio.gather / finishUserTasks (for comparison)", ratio(median["gather"] / median["batch"])),
    ]


def batching(lab: Lab) -> list[Row]:
    progress("4. batching")
    return asyncio.run(_batching(lab, 100))


# -- 5. scale --------------------------------------------------------------------------------------------------


def scale(lab: Lab) -> list[Row]:
    progress("5. scale")
    for engine, tasks in ((lab.small, SMALL), (lab.large, LARGE)):
        found = engine_total(engine, processModelId=MODEL_ID)
        if found != tasks:
            raise BenchFailure(f"{engine.data_dir} holds {found} waiting tasks, not {tasks}: delete it to reseed")
    task_filter = {"processModelId": [MODEL_ID], "state": ["SUSPENDED"]}
    latencies = series(
        lab.load,
        lab.timing,
        {
            "engine 1k": (
                queries.engine_page_request(lab.small.url, PAGE, processModelId=MODEL_ID),
                queries.engine_page_check(PAGE, SMALL),
            ),
            "engine 100k": (
                queries.engine_page_request(lab.large.url, PAGE, processModelId=MODEL_ID),
                queries.engine_page_check(PAGE, LARGE),
            ),
            "gateway 1k": (
                queries.list_request(lab.uncached.graphql_url, PAGE, task_filter),
                queries.list_check(PAGE, SMALL),
            ),
            "gateway 100k": (
                queries.list_request(lab.large_gateway.graphql_url, PAGE, task_filter),
                queries.list_check(PAGE, LARGE),
            ),
        },
    )
    gateway_small, gateway_large = latencies["gateway 1k"], latencies["gateway 100k"]
    growth = p50(gateway_large) / p50(gateway_small)
    engine_growth = p50(latencies["engine 100k"]) / p50(latencies["engine 1k"])
    rows = [
        Row(
            "5",
            f"filtered page of {PAGE}, gateway (uncached), 1,000 tasks: p50 / p99",
            both(latencies["gateway 1k"], lab.timing),
        ),
        Row(
            "5",
            f"filtered page of {PAGE}, gateway (uncached), 100,000 tasks: p50 / p99",
            both(latencies["gateway 100k"], lab.timing),
        ),
        Row("5", "gateway 100,000 / 1,000, p50", ratio(growth), "<= 3x", verdict(growth <= 3)),
        Row(
            "5",
            "engine alone 100,000 / 1,000, p50 (reference)",
            f"{ratio(engine_growth)} ({ms(p50(latencies['engine 1k']))} -> {ms(p50(latencies['engine 100k']))})",
        ),
    ]
    rows.append(memory(lab, task_filter))
    return rows


def memory(lab: Lab, task_filter: dict[str, Any]) -> Row:
    """RSS of the uncached gateway (1,000 tasks, so that 1,000 requests take seconds, not minutes), after warm-up."""
    request = queries.list_request(lab.uncached.graphql_url, PAGE, task_filter)
    check = queries.list_check(PAGE, SMALL)
    connections = lab.timing.memory_connections
    spec = {"requests": [request], "check": check, "connections": connections}
    lab.load.measure("memory: warm-up", {**spec, "count": 200})
    lab.load.measure("memory: 10 requests", {**spec, "count": 10})
    after_10 = lab.uncached.rss()
    lab.load.measure("memory: 990 more requests", {**spec, "count": 990})
    after_1000 = lab.uncached.rss()
    growth = after_1000 / after_10
    return Row(
        "5",
        f"gateway RSS after 1,000 filtered pages / after 10 ({connections} connections, uncached)",
        f"{ratio(growth)} ({after_10 / 2**20:.1f} -> {after_1000 / 2**20:.1f} MiB)",
        "<= 1.1x",
        verdict(growth <= 1.1),
    )


# -- 6. embedded engine throughput -----------------------------------------------------------------------------


async def _engine_throughput(lab: Lab) -> list[Row]:
    rows: list[Row] = []
    async with UserTaskClient(lab.work.url) as client:
        await client.deploy_process(APPROVAL_BPMN.read_text(encoding="utf-8"))

        async def cycle(index: int, correlation: str) -> None:
            started = await client.start_process_instance(
                MODEL_ID, correlation_id=correlation, initial_token=token_of(index)
            )
            tasks = await client.get_user_tasks(process_instance_id=started["processInstanceId"])
            if len(tasks) != 1 or tasks[0]["flowNodeId"] != "approveOrder":
                raise BenchFailure(f"engine throughput: {len(tasks)} first tasks instead of 1")
            await client.finish_user_task(tasks[0]["userTaskInstanceId"], FINISH_RESULT)

        async def run(instances: int, connections: int) -> float:
            correlation = f"bench-{uuid.uuid4()}"
            remaining = iter(range(instances))

            async def worker() -> None:
                for index in remaining:
                    await cycle(index, correlation)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - started
            waiting = await client.get_user_tasks(correlation_id=correlation, flow_node_id="approveOrder")
            following = await client.query_user_tasks(
                correlation_id=correlation, flow_node_id="notifyCustomer", limit=1
            )
            if waiting or following.total_count != instances:
                raise BenchFailure(
                    f"engine throughput: {len(waiting)} first tasks left,"
                    f" {following.total_count} next tasks of {instances}"
                )
            return instances / elapsed

        await run(20, 4)  # warm-up
        for connections in (1, 8):
            rate = await run(lab.timing.engine_instances, connections)
            rows.append(
                Row(
                    "6",
                    f"embedded engine: instances started + first task finished, {connections} connection"
                    + ("s" if connections > 1 else ""),
                    f"{rate:.0f} /s",
                )
            )
    return rows


def engine_throughput(lab: Lab) -> list[Row]:
    progress("6. embedded engine throughput")
    return asyncio.run(_engine_throughput(lab))


# -- main ------------------------------------------------------------------------------------------------------

FIGURES: dict[str, Callable[[Lab], list[Row]]] = {
    "1": gateway_tax,
    "2": concurrency,
    "3": work_saved,
    "4": batching,
    "5": scale,
    "6": engine_throughput,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="123456", help="which figures to run, e.g. 15 (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter runs (development only)")
    parser.add_argument("--update-readme", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args(argv)
    timing = Timing.quick() if args.quick else Timing()
    started = time.perf_counter()
    load_before = load_average()
    rows: list[Row] = []
    with lab(timing) as running:
        for key, figure in FIGURES.items():
            if key in args.only:
                rows.extend(figure(running))
    elapsed = time.perf_counter() - started
    missed = sum(row.verdict == MISS for row in rows)
    passed = sum(row.verdict == PASS for row in rows)
    command = COMMAND + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only != "123456" else "")
    text = "\n".join(
        [
            f"machine: {machine()}",
            f"date: {now()}; command: {command}; took {elapsed:.0f} s;"
            f" load average {load_before} before, {load_average()} after ({len(os.sched_getaffinity(0))} cores)",
            f"settings: {timing.samples} samples per latency series in {timing.rounds} interleaved rounds,"
            f" {timing.seconds:g} s per throughput level, {timing.batch_rounds} batch rounds (median)",
            "",
            render(rows),
            "",
            f"{passed} targets met, {missed} missed.",
        ]
    )
    print(text)
    if args.update_readme:
        update_readme("```\n" + text + "\n```", "bench")
    return 0
