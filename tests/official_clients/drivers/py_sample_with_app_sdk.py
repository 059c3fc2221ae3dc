"""SampleWithAppSDK (5Minds' ProcessCube.AppTemplate) to its end, driven only by processcube_client: Client for
deploy, start and the user tasks, ExternalTaskClient as the worker of its service task."""

from __future__ import annotations

import asyncio
import threading

from _common import ENGINE_URL, SHARED_PROCESSES, run, step, until, wait_for_end
from processcube_client import ExternalTaskClient
from processcube_client.core.api import (
    Client,
    FlowNodeInstancesQuery,
    ProcessStartRequest,
    StartCallbackType,
    UserTaskQuery,
)

PID = "SampleWithAppSDK_Process"
seen: list[dict[str, object]] = []


def greet(payload: dict[str, object]) -> dict[str, object]:
    seen.append(payload)
    return {"greeting_back": f"{payload.get('greeting')} zurück"}


def main() -> None:
    client = Client(ENGINE_URL)
    step(
        "deploy_bpmn_from_path",
        lambda: client.deploy_bpmn_from_path(SHARED_PROCESSES / "SampleWithAppSDK.bpmn"),
    )
    loop = asyncio.new_event_loop()
    worker = ExternalTaskClient(ENGINE_URL, loop=loop, worker_id="py-appsdk", install_signals=False)
    worker.subscribe_to_external_task_topic("appsdk_greeting", greet, long_polling_timeout_in_ms=1000)
    threading.Thread(target=lambda: worker.start(run_forever=True), daemon=True).start()
    started = step(
        "start",
        lambda: client.process_model_start(
            PID, ProcessStartRequest(process_model_id=PID, return_on=StartCallbackType.CallbackOnProcessInstanceCreated)
        ),
    )
    pi = started.process_instance_id

    def finish(flow_node_id: str, result: dict[str, object]) -> dict[str, object]:
        task = until(
            f"user task {flow_node_id}",
            lambda: client.user_task_query(UserTaskQuery(process_instance_id=pi, flow_node_id=flow_node_id)),
            lambda tasks: len(tasks) == 1,
        )[0]
        client.user_task_finish(task.user_task_instance_id, result)
        return {
            "flowNodeName": task.flow_node_name,
            "formFields": [field.to_dict() for field in task.user_task_config.form_fields],
        }

    step("Begrüssung eingeben", lambda: finish("begrssungEingeben", {"greeting": "Moin"}))
    step("Begrüssung bekommen", lambda: finish("begrssungBekommen", {"greeting_back": "Moin zurück"}))
    wait_for_end(client, pi)
    step(
        "end events",
        lambda: [
            node.flow_node_id
            for node in client.flow_node_instance_query(
                FlowNodeInstancesQuery(process_instance_id=pi, flow_node_type="bpmn:EndEvent")
            )
        ],
    )
    step("external task payloads", lambda: seen)


if __name__ == "__main__":
    run(main)
