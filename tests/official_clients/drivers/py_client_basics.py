"""processcube_client (PyPI 6.1.2), unchanged: Client (sync) and ClientFactory's async clients.

info, deploy, start, process instance and flow node instance queries, user task query/reserve/cancel/finish.
"""

from __future__ import annotations

import asyncio

from _common import ENGINE_URL, MODELS_DIR, run, step, until
from processcube_client import ClientFactory
from processcube_client.core.api import (
    Client,
    FlowNodeInstancesQuery,
    ProcessDefinitionUploadPayload,
    ProcessInstanceQueryRequest,
    ProcessStartRequest,
    ReserveUserTaskRequest,
    StartCallbackType,
    UserTaskQuery,
)

PID = "OfficialClients_UserTasks"
MODEL = MODELS_DIR / f"{PID}.bpmn"


def main() -> None:
    client = Client(ENGINE_URL)
    factory = ClientFactory()
    step("Client.info", client.info)
    step("AppInfoClient.get_info", lambda: factory.create_app_info_client(ENGINE_URL).get_info())
    step("Client.authority", client.authority)
    step("Client.deploy_bpmn_from_path", lambda: client.deploy_bpmn_from_path(MODEL))
    step(
        "Client.process_definition_upload",
        lambda: client.process_definition_upload(
            ProcessDefinitionUploadPayload(xml=MODEL.read_text(encoding="utf-8"), overwrite_existing=True)
        ),
    )
    started = step(
        "Client.process_model_start",
        lambda: client.process_model_start(
            PID,
            ProcessStartRequest(
                process_model_id=PID,
                return_on=StartCallbackType.CallbackOnProcessInstanceCreated,
                correlation_id="official-py-basics",
                initial_token={"antragsnummer": 11},
            ),
        ),
    )
    pi = started.process_instance_id
    step(
        "Client.process_instance_query",
        lambda: client.process_instance_query(ProcessInstanceQueryRequest(process_instance_id=pi)),
        fatal=False,
    )
    task = step(
        "Client.user_task_query",
        lambda: until(
            "the waiting user task",
            lambda: client.user_task_query(UserTaskQuery(process_instance_id=pi)),
            lambda tasks: len(tasks) == 1,
        )[0],
    )
    step(
        "Client.flow_node_instance_query",
        lambda: [
            {"flowNodeId": node.flow_node_id, "flowNodeType": node.flow_node_type, "state": node.state}
            for node in client.flow_node_instance_query(FlowNodeInstancesQuery(process_instance_id=pi))
        ],
    )
    task_id = task.user_task_instance_id

    def owner() -> str | None:
        found = client.user_task_query(UserTaskQuery(user_task_instance_id=task_id))
        return found[0].actual_owner_id if found else "<task not found>"

    step(
        "Client.user_task_reserve",
        lambda: (client.user_task_reserve(task_id, ReserveUserTaskRequest(actual_owner_id="py@example.com")), owner()),
    )
    step("Client.user_task_cancel_reservation", lambda: (client.user_task_cancel_reservation(task_id), owner()))
    step("Client.user_task_finish", lambda: client.user_task_finish(task_id, {"approved": True, "comment": "py"}))
    step(
        "instance finished (Client)",
        lambda: until(
            "the instance to finish",
            lambda: client.process_instance_query(ProcessInstanceQueryRequest(process_instance_id=pi, limit=10)),
            lambda found: bool(found) and found[0].state in ("finished", "error", "terminated"),
        )[0],
    )

    # The async clients of ClientFactory: ProcessDefinitionClient starts, UserTaskClient reserves/cancels/finishes.
    second = step(
        "ProcessDefinitionClient.start_process_instance",
        lambda: factory.create_process_definition_client(ENGINE_URL).start_process_instance(
            PID, "StartEvent_1", initial_token={"antragsnummer": 12}
        ),
    )
    second_pi = second["processInstanceId"]
    second_task = until(
        "the second instance's user task",
        lambda: client.user_task_query(UserTaskQuery(process_instance_id=second_pi)),
        lambda tasks: len(tasks) == 1,
    )[0].user_task_instance_id
    user_tasks = factory.create_user_task_client(ENGINE_URL)
    loop = asyncio.get_event_loop()
    step(
        "UserTaskClient.reserve_user_task",
        lambda: (
            loop.run_until_complete(user_tasks.reserve_user_task(second_task, "async@example.com")),
            owner_of(client, second_task),
        ),
    )
    step(
        "UserTaskClient.cancel_reservation_user_task",
        lambda: (
            loop.run_until_complete(user_tasks.cancel_reservation_user_task(second_task)),
            owner_of(client, second_task),
        ),
    )
    step(
        "UserTaskClient.finish_user_task",
        lambda: loop.run_until_complete(
            user_tasks.finish_user_task(second_task, {"approved": False, "comment": "async"})
        ),
    )
    step(
        "instance finished (async clients)",
        lambda: until(
            "the second instance to finish",
            lambda: client.process_instance_query(ProcessInstanceQueryRequest(process_instance_id=second_pi, limit=10)),
            lambda found: bool(found) and found[0].state in ("finished", "error", "terminated"),
        )[0],
    )

    straight = MODELS_DIR / "OfficialClients_Straight.bpmn"
    step("deploy OfficialClients_Straight", lambda: client.deploy_bpmn_from_path(straight))
    step(
        "Client.process_definition_delete",
        lambda: client.process_definition_delete("OfficialClients_Straight_Definition"),
        fatal=False,
    )


def owner_of(client: Client, task_id: str) -> str | None:
    found = client.user_task_query(UserTaskQuery(user_task_instance_id=task_id))
    return found[0].actual_owner_id if found else "<task not found>"


if __name__ == "__main__":
    run(main)
