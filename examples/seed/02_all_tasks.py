"""Seed: "User Tasks abrufen / Alle User Tasks"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def get_all_user_tasks():
    async with UserTaskClient(ENGINE_URL) as client:
        # Alle verfügbaren User Tasks
        user_tasks = await client.get_user_tasks()
        if not user_tasks:
            print("Keine User Tasks verfügbar")
            return
        for task in user_tasks:
            print(f"Task-ID: {task['userTaskInstanceId']}")
            print(f"FlowNode: {task['flowNodeId']}")
            print(f"Prozess: {task['processInstanceId']}")
            print(f"Token: {task['token']}")
            print("---")


asyncio.run(get_all_user_tasks())
