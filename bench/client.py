"""Requests per second of UserTaskClient.get_user_tasks at concurrency 1 and 20 against the embedded engine.

    python -m bench.client [--duration 3] [--tasks 20] [--compare-httpx]

Starts the embedded engine in its own process on a free loopback port, deploys a one-task model, starts
`--tasks` instances, warms up, then measures both concurrencies for the same duration, checking every reply
(the right number of tasks). Prints both rates and their ratio; exits 1 if the ratio falls below 1 (the pool
must hold up under concurrency: httpx's own pool is known to collapse, encode/httpx#3215).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gateway.engine import UserTaskClient

REPO = Path(__file__).resolve().parents[1]
MODEL_ID = "BenchProcess"
BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="BenchDefinitions"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="BenchProcess" name="Bench" isExecutable="true">
    <bpmn:startEvent id="Start" />
    <bpmn:sequenceFlow id="Flow1" sourceRef="Start" targetRef="Task" />
    <bpmn:userTask id="Task" name="Bench task">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="done" label="Done" type="boolean" />
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="Flow2" sourceRef="Task" targetRef="End" />
    <bpmn:endEvent id="End" />
  </bpmn:process>
</bpmn:definitions>
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_engine(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "embedded_engine",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the embedded engine exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/atlas_engine/api/v1/info", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the embedded engine did not start within 30 s")


async def _prepare(client: UserTaskClient, tasks: int) -> None:
    await client.deploy_process(BPMN)
    await asyncio.gather(*(client.start_process_instance(MODEL_ID, initial_token={"n": i}) for i in range(tasks)))
    for _ in range(200):
        if len(await client.get_user_tasks(process_model_id=MODEL_ID)) == tasks:
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"expected {tasks} waiting tasks")


async def _measure(client: UserTaskClient, concurrency: int, duration: float, expected: int) -> float:
    count = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            tasks = await client.get_user_tasks(process_model_id=MODEL_ID)
            if len(tasks) != expected:
                raise SystemExit(f"wrong answer under load: {len(tasks)} tasks instead of {expected}")
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _run(url: str, args: argparse.Namespace) -> float:
    async with UserTaskClient(url) as client:
        await _prepare(client, args.tasks)
        await _measure(client, 20, 1.0, args.tasks)  # warm-up: open the pool's connections
        one = await _measure(client, 1, args.duration, args.tasks)
        twenty = await _measure(client, 20, args.duration, args.tasks)
    ratio = twenty / one
    print(f"transport: httpx-aiohttp (default), {args.tasks} tasks per reply, {args.duration:g} s each")
    print(f"concurrency  1: {one:8.1f} requests/s")
    print(f"concurrency 20: {twenty:8.1f} requests/s")
    print(f"ratio 20/1:     {ratio:8.2f}")
    if args.compare_httpx:
        async with UserTaskClient(url, transport=httpx.AsyncHTTPTransport()) as plain:
            await _measure(plain, 20, 1.0, args.tasks)
            plain_one = await _measure(plain, 1, args.duration, args.tasks)
            plain_twenty = await _measure(plain, 20, args.duration, args.tasks)
        print(
            f"for comparison, httpx's own pool: {plain_one:.1f} -> {plain_twenty:.1f} requests/s,"
            f" ratio {plain_twenty / plain_one:.2f}"
        )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--tasks", type=int, default=20, help="waiting tasks in every reply")
    parser.add_argument("--compare-httpx", action="store_true", help="also measure httpx's own pool")
    parser.add_argument("--engine-url", help="use a running engine instead of starting one")
    args = parser.parse_args()
    if args.engine_url:
        ratio = asyncio.run(_run(args.engine_url.rstrip("/"), args))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-engine-") as data_dir:
            process, url = _start_engine(Path(data_dir))
            try:
                ratio = asyncio.run(_run(url, args))
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    if ratio < 1:
        print("FAIL: requests per second at concurrency 20 fell below concurrency 1")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
