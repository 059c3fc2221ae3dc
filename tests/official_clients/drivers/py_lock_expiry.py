"""processcube_client's Client (sync): fetch_and_lock, extend_lock, finish; an expired lock lets another worker
fetch the task, and the first worker can no longer finish it."""

from __future__ import annotations

import time

from _common import ENGINE_URL, deploy, run, start, step, until, wait_for_end
from processcube_client.core.api import (
    Client,
    FetchAndLockRequestPayload,
    FinishExternalTaskRequestPayload,
)
from processcube_client.core.api.helpers.external_tasks import ExtendLockRequest

PID = "OfficialClients_ExternalTaskLock"
TOPIC = "oc_lock"


def fetch(client: Client, worker: str, *, lock_ms: int, poll_ms: int) -> list[object]:
    return client.external_task_fetch_and_lock(
        FetchAndLockRequestPayload(
            worker_id=worker, topic_name=TOPIC, max_tasks=1, long_polling_timeout=poll_ms, lock_duration=lock_ms
        )
    )


def main() -> None:
    client = Client(ENGINE_URL)
    deploy(client, PID)
    pi = start(client, PID, {"auftrag": 1})
    first = step(
        "worker A fetch_and_lock",
        lambda: until("a task for worker A", lambda: fetch(client, "worker-a", lock_ms=1000, poll_ms=1000), bool),
    )[0]
    step(
        "worker A extend_lock",
        lambda: client.external_task_extend_lock(
            first.id, ExtendLockRequest(worker_id="worker-a", additional_duration=1000)
        ),
    )
    step("worker B fetch while locked", lambda: fetch(client, "worker-b", lock_ms=5000, poll_ms=200))
    step("lock expires", lambda: time.sleep(2.2))  # past the extended lock: 1 s, extended by 1 s
    second = step(
        "worker B fetch after expiry",
        lambda: until(
            "the expired task for worker B", lambda: fetch(client, "worker-b", lock_ms=5000, poll_ms=1000), bool
        ),
    )[0]
    step(
        "worker A finish after expiry",
        lambda: client.external_task_finish(
            first.id, FinishExternalTaskRequestPayload(worker_id="worker-a", result={"von": "a"})
        ),
        fatal=False,
    )
    step(
        "worker B finish",
        lambda: client.external_task_finish(
            second.id, FinishExternalTaskRequestPayload(worker_id="worker-b", result={"von": "b"})
        ),
    )
    wait_for_end(client, pi)
    step("ids", lambda: {"first": first.id, "second": second.id, "processInstanceId": pi})


if __name__ == "__main__":
    run(main)
