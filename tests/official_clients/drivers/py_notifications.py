"""processcube_client's NotificationClient (long polling): on_process_started, on_user_task_waiting,
on_user_task_finished, on_process_ended. The client's loop runs in the main thread (it installs signal handlers);
a thread drives the engine with Client and stops the loop.

A long poll answers only events after it was sent, so the thread repeats its action until the event is seen.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from _common import ENGINE_URL, MODELS_DIR, jsonable, run, step, steps, until
from processcube_client import NotificationClient
from processcube_client.core.api import (
    Client,
    ProcessDefinitionUploadPayload,
    ProcessStartRequest,
    StartCallbackType,
    UserTaskQuery,
)

PID = "OfficialClients_UserTasks"
seen: dict[str, list[Any]] = {
    "process_started": [],
    "user_task_waiting": [],
    "user_task_finished": [],
    "process_ended": [],
}


def drive(client: Client, loop: asyncio.AbstractEventLoop) -> None:
    started: list[str] = []

    def start() -> str:
        answer = client.process_model_start(
            PID,
            ProcessStartRequest(
                process_model_id=PID,
                return_on=StartCallbackType.CallbackOnProcessInstanceCreated,
                initial_token={"benachrichtigung": True},
            ),
        )
        started.append(answer.process_instance_id)
        return str(answer.process_instance_id)

    def mine(event: str) -> list[Any]:
        return [message for message in seen[event] if message.get("processInstanceId") in started]

    def repeat(event: str, action: Any) -> list[Any]:
        deadline = time.monotonic() + 10
        while not mine(event):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} notification within 10 s; seen: {jsonable(seen)}"[:1500])
            action()
            for _ in range(10):
                if mine(event):
                    break
                time.sleep(0.05)
        return mine(event)

    def finish_one() -> None:
        for pi in started:
            for task in client.user_task_query(UserTaskQuery(process_instance_id=pi)):
                client.user_task_finish(task.user_task_instance_id, {"approved": True})
                return
        start()

    try:
        xml = (MODELS_DIR / f"{PID}.bpmn").read_text(encoding="utf-8")
        step(
            "deploy",
            lambda: client.process_definition_upload(ProcessDefinitionUploadPayload(xml=xml, overwrite_existing=True)),
        )
        time.sleep(0.3)  # let the first long polls reach the engine
        step("on_process_started", lambda: repeat("process_started", start))
        step("on_user_task_waiting", lambda: repeat("user_task_waiting", start))
        until(
            "a waiting task",
            lambda: sum(len(client.user_task_query(UserTaskQuery(process_instance_id=pi))) for pi in started),
            bool,
        )
        step("on_user_task_finished", lambda: repeat("user_task_finished", finish_one))
        step("on_process_ended", lambda: repeat("process_ended", finish_one))
    except Exception:
        pass
    finally:
        loop.call_soon_threadsafe(loop.stop)


def main() -> None:
    client = Client(ENGINE_URL)
    notifications = NotificationClient(ENGINE_URL)
    for event in seen:
        getattr(notifications, f"on_{event}")(lambda message, event=event: seen[event].append(message))
    loop = asyncio.get_event_loop()
    threading.Thread(target=drive, args=(client, loop), daemon=True).start()
    notifications.start()  # runs the loop until drive() stops it
    if "_driver" not in steps:
        step("messages", lambda: {event: messages[:2] for event, messages in seen.items()})


if __name__ == "__main__":
    run(main)
