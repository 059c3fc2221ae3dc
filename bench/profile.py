"""Profile the gateway under one kind of load with pyinstrument, and print where its time goes.

    python -m bench.profile SCENARIO [--requests N] [--connections C] [--tree]

SCENARIO is one of ``cached`` (userTasks(first: 50) with the default cache), ``uncached`` (the same, cache off),
``rest`` (GET /api/v1/user-tasks?limit=50, cache off), ``large`` (the filtered page from the 100,000-task engine,
cache off) or ``batch`` (finishUserTasks with 100 items). The gateway runs under ``python -m pyinstrument`` in its own
process, the load comes from :mod:`bench.load`; the report is pyinstrument's, flat by self time unless ``--tree``.
Uses the seeded data directories of ``python -m bench`` (seeds them if missing).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from gateway.engine import UserTaskClient

from . import queries
from .run import DATA, FINISH_RESULT, LARGE, PAGE, SMALL, LoadGenerator, http_check
from .seed import APPROVAL_BPMN, MODEL_ID, ensure_seeded, token_of
from .servers import Engine, Gateway

SCENARIOS = ("cached", "uncached", "rest", "large", "batch")


async def _batch(engine: Engine, gateway: Gateway, rounds: int) -> None:
    async with UserTaskClient(engine.url) as client, httpx.AsyncClient(timeout=300) as http:
        await client.deploy_process(APPROVAL_BPMN.read_text(encoding="utf-8"))
        for round_ in range(rounds):
            correlation = f"profile-{round_}"
            for index in range(100):
                await client.start_process_instance(MODEL_ID, correlation_id=correlation, initial_token=token_of(index))
            tasks = await client.get_user_tasks(correlation_id=correlation, flow_node_id="approveOrder")
            items = [{"id": task["userTaskInstanceId"], "result": FINISH_RESULT} for task in tasks]
            response = await http.post(
                gateway.graphql_url, json={"query": queries.FINISH_MANY, "variables": {"items": items}}
            )
            http_check(response, {"asserts": [{"path": ["data", "finishUserTasks"], "length": len(items)}]}, "batch")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=500, help="requests (batch: rounds of 100 items)")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--tree", action="store_true", help="the call tree instead of the flat list")
    args = parser.parse_args()

    tasks = LARGE if args.scenario == "large" else SMALL
    if args.scenario != "batch":
        ensure_seeded(DATA / f"seed-{tasks}", tasks)
    workdir = Path(tempfile.mkdtemp(prefix="profile-", dir=DATA))
    report = workdir / "profile.txt"
    options = ["-p", "flat=true", "-p", "flat_time=self"] if not args.tree else []
    launcher = (sys.executable, "-m", "pyinstrument", "-r", "text", "--no-color", *options, "-o", str(report))
    data_dir = workdir / "engine" if args.scenario == "batch" else DATA / f"seed-{tasks}"
    engine = Engine("profile-engine", workdir, data_dir=data_dir).start()
    env = {} if args.scenario in ("cached", "batch") else {"GATEWAY_CACHE_TTL_SECONDS": "0"}
    gateway = Gateway("profile-gateway", workdir, engine_url=engine.url, env=env, launcher=launcher).start()
    try:
        if args.scenario == "batch":
            asyncio.run(_batch(engine, gateway, args.requests))
        else:
            request: dict[str, Any]
            if args.scenario == "rest":
                request, check = queries.rest_page_request(gateway.url, PAGE), queries.rest_page_check(PAGE, tasks)
            elif args.scenario == "large":
                task_filter = {"processModelId": [MODEL_ID], "state": ["SUSPENDED"]}
                request, check = (
                    queries.list_request(gateway.graphql_url, PAGE, task_filter),
                    queries.list_check(PAGE, tasks),
                )
            else:
                request, check = queries.list_request(gateway.graphql_url, PAGE), queries.list_check(PAGE, tasks)
            load = LoadGenerator()
            try:
                spec = {"requests": [request], "check": check, "connections": args.connections, "count": args.requests}
                load.measure(args.scenario, spec)
            finally:
                load.close()
    finally:
        gateway.stop(signal.SIGINT)  # uvicorn re-raises it after its shutdown; pyinstrument then reports
        engine.stop()
    print(report.read_text() if report.exists() else gateway.log())
    if report.exists() and report.stat().st_size:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
