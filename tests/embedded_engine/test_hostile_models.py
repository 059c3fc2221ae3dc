"""Hostile models over real HTTP: model code can never take the engine down.

Models whose condition loops, allocates without bound, recurses or throws are deployed to a real engine process
and started fifty times each, interleaved with fifty healthy instances, from four clients at once. Every hostile
instance must end in ``error`` with a message, every healthy one must reach its user task, the engine must answer
``/info`` all along, and it must still run afterwards, with no worker process outliving it. The engine's
JavaScript budget is its default (200 ms): the engine offers no way to lower it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EngineFactory
from tests.servers import EngineServer

INSTANCES_PER_MODEL = 50

HOSTILE_CONDITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    # process model id: (condition, fragments of which the error message must contain one)
    "Loops": ("while (true) {}", ("timed out",)),
    "Allocates": ("const a = []; while (true) a.push(new Array(1e6).fill(1));", ("memory limit", "timed out")),
    "Recurses": ("function f() { return f(); } return f();", ("RangeError",)),
    "Throws": ("throw new Error('hostile model');", ("hostile model",)),
}

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="{process_id}_Definition" '
    'targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def gateway_model(process_id: str, condition: str, *, user_task: bool = False) -> str:
    """Start, an exclusive gateway whose conditional flow leads to a user task (or an end), a default flow."""
    target = (
        '<bpmn:userTask id="Review" name="Review" /><bpmn:sequenceFlow id="f_done" sourceRef="Review" '
        'targetRef="end_yes" />'
        if user_task
        else ""
    )
    return (
        HEAD.format(process_id=process_id) + f'<bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">'
        '<bpmn:startEvent id="start" /><bpmn:exclusiveGateway id="gw" default="f_default" />'
        '<bpmn:endEvent id="end_yes" /><bpmn:endEvent id="end_no" />'
        f"{target}"
        '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw" />'
        f'<bpmn:sequenceFlow id="f_cond" sourceRef="gw" targetRef="{"Review" if user_task else "end_yes"}">'
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"><![CDATA[{condition}]]>'
        "</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="f_default" sourceRef="gw" targetRef="end_no" />'
        "</bpmn:process></bpmn:definitions>\n"
    )


@dataclass
class InfoProbe:
    """Asks ``/info`` every 50 ms from its own thread and records every failure."""

    url: str
    answered: int = 0
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    if status == 200:
                        self.answered += 1
                    else:
                        self.failures.append(f"status {status}")
                self.slowest = max(self.slowest, time.monotonic() - started)
                self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def info_probe(url: str) -> Iterator[InfoProbe]:
    probe = InfoProbe(url)
    thread = threading.Thread(target=probe.run, name="info-probe")
    thread.start()
    try:
        yield probe
    finally:
        probe.stop()
        thread.join()


def instances(engine: EngineServer, process_model_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        engine.api + "/process_instances/query",
        params={"processModelId": process_model_id},
        headers=engine.headers(),
        timeout=30,
    )
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["processInstances"]
    return found


def worker_pids(engine_pid: int) -> set[int]:
    """The engine's JavaScript worker processes (its children running ``embedded_engine.js_worker``)."""
    pids: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == engine_pid and b"embedded_engine.js_worker" in command:
            pids.add(int(stat.parent.name))
    return pids


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def engine(engine_server_factory: EngineFactory) -> EngineServer:
    server = engine_server_factory()
    for process_id, (condition, _expected) in HOSTILE_CONDITIONS.items():
        server.deploy(gateway_model(process_id, condition))
    server.deploy(gateway_model("Healthy", "token.current.n >= 0", user_task=True))
    return server


def test_hostile_models_end_in_error_while_healthy_ones_advance_and_the_engine_keeps_serving(
    engine: EngineServer,
) -> None:
    # Round after round: one instance of each hostile model, then a healthy one; four clients at once.
    jobs = [(process_id, n) for n in range(INSTANCES_PER_MODEL) for process_id in (*HOSTILE_CONDITIONS, "Healthy")]

    def start(job: tuple[str, int]) -> tuple[str, str]:
        process_id, n = job
        return process_id, str(engine.start_instance(process_id, {"n": n})["processInstanceId"])

    with info_probe(engine.api + "/info") as probe, ThreadPoolExecutor(max_workers=4) as clients:
        started = list(clients.map(start, jobs))

    assert probe.failures == [], probe.failures
    assert probe.answered > 0
    assert engine.process is not None
    assert engine.process.poll() is None, engine.log()
    assert httpx.get(engine.api + "/info").status_code == 200

    for process_id, (_condition, expected) in HOSTILE_CONDITIONS.items():
        ids = {instance_id for model_id, instance_id in started if model_id == process_id}
        found = instances(engine, process_id)
        assert {item["processInstanceId"] for item in found} == ids
        assert len(ids) == INSTANCES_PER_MODEL
        for item in found:
            assert item["state"] == "error", item
            message = item["error"]["message"]
            assert 'Condition of sequence flow "f_cond" failed' in message
            assert any(fragment in message for fragment in expected), message

    healthy = {instance_id for model_id, instance_id in started if model_id == "Healthy"}
    assert len(healthy) == INSTANCES_PER_MODEL
    assert {item["state"] for item in instances(engine, "Healthy")} == {"running"}
    tasks = engine.user_tasks(processModelId="Healthy")
    assert {task["processInstanceId"] for task in tasks} == healthy
    assert {task["flowNodeId"] for task in tasks} == {"Review"}

    log = engine.log()
    assert "Traceback" not in log, log
    assert "Exception ignored" not in log, log

    workers = worker_pids(engine.process.pid)
    assert workers, "the engine evaluated through worker processes"
    engine.stop()
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers)


def test_workers_end_when_the_engine_is_killed(engine: EngineServer) -> None:
    engine.start_instance("Loops", {"n": 0})
    engine.start_instance("Healthy", {"n": 0})
    assert engine.process is not None
    workers = worker_pids(engine.process.pid)
    assert workers
    engine.kill()
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in workers)
