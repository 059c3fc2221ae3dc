"""processcube_client's Client: manual_task_query/manual_task_finish and empty_task_query/empty_task_finish (which
uses the legacy route PUT /empty_activities/:id/finish)."""

from __future__ import annotations

from _common import ENGINE_URL, deploy, run, start, step, until, wait_for_end
from processcube_client.core.api import (
    Client,
    EmptyTaskQuery,
    ManualTaskQuery,
)

PID = "OfficialClients_ManualUntyped"


def main() -> None:
    client = Client(ENGINE_URL)
    deploy(client, PID)
    pi = start(client, PID, {"paket": "py"})
    manual = step(
        "Client.manual_task_query",
        lambda: until(
            "the waiting manual task",
            lambda: client.manual_task_query(ManualTaskQuery(process_instance_id=pi)),
            lambda tasks: len(tasks) == 1,
        )[0],
    )
    step("Client.manual_task_finish", lambda: client.manual_task_finish(manual.manual_task_instance_id))
    empty = step(
        "Client.empty_task_query",
        lambda: until(
            "the waiting untyped task",
            lambda: client.empty_task_query(EmptyTaskQuery(process_instance_id=pi)),
            lambda tasks: len(tasks) == 1,
        )[0],
    )
    step("Client.empty_task_finish", lambda: client.empty_task_finish(empty.empty_task_instance_id))
    wait_for_end(client, pi)


if __name__ == "__main__":
    run(main)
