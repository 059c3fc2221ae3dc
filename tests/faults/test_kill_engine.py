"""kill -9 of the engine during 200 concurrent finishes (issue 15): every answer is true.

200 ApprovalProcess instances; 16 clients finish their first tasks through one gateway (REST, no retries of their
own; after a 503 a client waits a little, as one that honours Retry-After would, so that finishes go on after the
restart too). When a third of them are answered, the engine is killed (SIGKILL) and started again on the same port
and data directory. Then the engine is asked about every task:

- 200: finished at the engine;
- ENGINE_UNAVAILABLE (and any other error but OUTCOME_UNKNOWN): not finished;
- OUTCOME_UNKNOWN: either; resolved by reading the task, and counted;
- no task finished twice: each finished task has exactly one successor in its instance's flow node history.
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import deploy_examples
from tests.report import AttackReport
from tests.servers import EngineServer, gateway_in_front_of

TASKS = 200
CLIENTS = 16
KILL_AFTER = TASKS // 3


@pytest.mark.slow
def test_kill_9_during_200_concurrent_finishes(tmp_path: Path, attack_report: AttackReport) -> None:
    engine = deploy_examples(EngineServer(data_dir=tmp_path / "engine").start())
    gateway = gateway_in_front_of(engine.url, tmp_path / "gateway").start()
    try:
        correlation = f"kill-{uuid.uuid4()}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda amount: engine.start_instance(
                        "ApprovalProcess",
                        {"amount": amount, "customerType": "regular", "customerId": f"C-{amount}"},
                        correlationId=correlation,
                    ),
                    range(100, 100 + TASKS),
                )
            )
        task_ids = [str(task["flowNodeInstanceId"]) for task in engine.user_tasks(correlationId=correlation)]
        assert len(task_ids) == TASKS
        todo: queue.Queue[str] = queue.Queue()
        for task_id in task_ids:
            todo.put(task_id)
        answers: dict[str, str] = {}
        lock = threading.Lock()
        killed = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=gateway.url + "/api/v1", timeout=60) as http:
                while True:
                    try:
                        task_id = todo.get_nowait()
                    except queue.Empty:
                        return
                    response = http.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}})
                    code = "OK" if response.status_code == 200 else str(response.json()["code"])
                    with lock:
                        answers[task_id] = code
                    if code == "ENGINE_UNAVAILABLE":
                        time.sleep(1.0)

        def killer() -> None:
            while len(answers) < KILL_AFTER:
                time.sleep(0.005)
            engine.kill()
            killed.set()
            time.sleep(0.3)
            engine.start()  # same port, same data directory

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        kill = threading.Thread(target=killer)
        kill.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        kill.join(120)
        assert killed.is_set()
        assert len(answers) == TASKS

        nodes = engine.flow_nodes(correlationId=correlation)
        state = {node["flowNodeInstanceId"]: node["state"] for node in nodes}
        successors = collections.Counter(node.get("previousFlowNodeInstanceId") for node in nodes)
        table: collections.Counter[tuple[str, str]] = collections.Counter()
        lost, twice, misreported = [], [], []
        for task_id, code in answers.items():
            table[(code, state[task_id])] += 1
            if code == "OK" and state[task_id] != "finished":
                lost.append(task_id)  # acknowledged, yet not done
            if code not in ("OK", "OUTCOME_UNKNOWN") and state[task_id] != "suspended":
                misreported.append(task_id)  # told "not done", yet done
            # finished once: one next flow node in its instance (a second finish would make a second one)
            if successors[task_id] > 1:
                twice.append(task_id)
        attack_report.add("faults injected")  # the kill
        attack_report.add("inputs tried", TASKS)
        attack_report.add("acknowledged writes lost", len(lost))
        attack_report.add("writes applied twice", len(twice))
        attack_report.add("writes misreported", len(misreported))
        assert (lost, twice, misreported) == ([], [], [])
        assert {state[task_id] for task_id in answers} <= {"finished", "suspended"}

        print(f"\nkill -9 during {TASKS} finishes from {CLIENTS} clients (answer x state at the engine):")
        print(f"  {'answer':<20} {'finished':>9} {'waiting':>9}")
        for code in sorted({code for code, _ in table}):
            print(f"  {code:<20} {table[(code, 'finished')]:>9} {table[(code, 'suspended')]:>9}")
        assert table[("ENGINE_UNAVAILABLE", "finished")] == 0
    finally:
        gateway.stop()
        engine.stop()
