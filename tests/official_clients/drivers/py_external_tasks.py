"""processcube_client's ExternalTaskClient (the async worker): finish, FunctionalError (a BPMN error caught by a
boundary error event), a plain exception (a service error), and a slow handler whose lock the worker extends."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from _common import ENGINE_URL, deploy, run, start, step, until
from processcube_client import ExternalTaskClient
from processcube_client.core.api import (
    Client,
    FlowNodeInstancesQuery,
    ProcessInstanceQueryRequest,
)
from processcube_client.external_task import FunctionalError

PID = "OfficialClients_ExternalTasks_PY"
TOPIC = "oc_py_work"
handled: list[dict[str, object]] = []
client_errors: list[str] = []


extend_locks: list[str] = []


class ErrorLog(logging.Handler):
    """The worker logs (and swallows) the engine's refusals; they are the engine's answer to report. It also logs
    each lock extension it sends (INFO), the only trace of them."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            client_errors.append(message[:1500])
        elif message.startswith("Extend lock for worker"):
            extend_locks.append(message[:300])


def handler(payload: dict[str, object], external_task: dict[str, object]) -> dict[str, object]:
    handled.append(
        {
            "mode": payload.get("mode"),
            "topic": external_task.get("topic"),
            "processInstanceId": external_task.get("processInstanceId"),
            "workerId": external_task.get("workerId"),
            "payload": payload,
        }
    )
    if payload.get("mode") == "bpmnError":
        raise FunctionalError("OC_BUSINESS", "Fachlicher Fehler", "Details")
    if payload.get("mode") == "serviceError":
        raise RuntimeError("Dienst nicht erreichbar")
    if payload.get("mode") == "slow":
        time.sleep(1.6)  # the worker extends the lock at 90 % of lock_duration_in_ms (0.9 s)
        return {"langsam": True}
    return {"erledigt": True, "nummer": payload.get("nummer")}


def outcome(client: Client, pi: str) -> dict[str, object]:
    found = client.process_instance_query(ProcessInstanceQueryRequest(process_instance_id=pi, limit=10))
    ends = client.flow_node_instance_query(
        FlowNodeInstancesQuery(process_instance_id=pi, flow_node_type="bpmn:EndEvent")
    )
    return {
        "state": found[0].state if found else None,
        "endEvents": sorted(str(node.flow_node_id) for node in ends),
    }


def main() -> None:
    client = Client(ENGINE_URL)
    deploy(client, PID)
    instances = {
        mode: start(client, PID, {"mode": mode, "nummer": len(mode)}, f"start {mode}")
        for mode in ("finish", "bpmnError", "serviceError", "slow")
    }

    client_logger = logging.getLogger("processcube_client")
    client_logger.setLevel(logging.INFO)
    client_logger.addHandler(ErrorLog(level=logging.INFO))
    loop = asyncio.new_event_loop()
    worker = ExternalTaskClient(ENGINE_URL, loop=loop, worker_id="py-worker", install_signals=False)
    worker.subscribe_to_external_task_topic(
        TOPIC, handler, max_tasks=10, long_polling_timeout_in_ms=1000, lock_duration_in_ms=1000
    )
    threading.Thread(target=lambda: worker.start(run_forever=True), daemon=True).start()

    def first_fetch() -> int:
        until("the first task or a fetch error", lambda: (len(handled), len(client_errors)), lambda seen: any(seen))
        if not handled:
            raise RuntimeError(f"the worker logged: {client_errors}")
        return len(handled)

    step("first fetch", first_fetch)
    deadline = time.monotonic() + 20
    for mode, pi in instances.items():
        step(
            f"outcome {mode}",
            lambda pi=pi: until(
                f"instance {pi} to end",
                lambda: outcome(client, pi),
                lambda found: found["state"] in ("finished", "error", "terminated"),
                seconds=max(deadline - time.monotonic(), 0.5),
            ),
            fatal=False,
        )
    step("worker errors", lambda: client_errors)
    step("extend locks", lambda: extend_locks)
    step("handled", lambda: handled)
    step("instances", lambda: instances)


if __name__ == "__main__":
    run(main)
