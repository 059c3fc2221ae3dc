"""Seed: "Mit Filter". (The client can also filter in the engine: get_user_tasks(process_model_id=...).)"""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def get_filtered_tasks():
    async with UserTaskClient(ENGINE_URL) as client:
        # Alle Tasks abrufen
        all_tasks = await client.get_user_tasks()
        # Nach Prozess filtern
        approval_tasks = [task for task in all_tasks if task["processModelId"] == "ApprovalProcess"]
        for task in approval_tasks:
            print(f"Approval Task: {task['userTaskInstanceId']}")


asyncio.run(get_filtered_tasks())
