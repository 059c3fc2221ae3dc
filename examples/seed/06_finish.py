"""Seed: "User Task abschließen / Einfaches Beispiel"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def finish_user_task():
    async with UserTaskClient(ENGINE_URL) as client:
        # Tasks abrufen
        user_tasks = await client.get_user_tasks()
        if not user_tasks:
            return
        task = user_tasks[0]
        # Task-Ergebnis
        result = {
            "approved": True,
            "approver": "manager@example.com",
            "comment": "Genehmigt am 2024-01-15",
            "amount": 1500,
        }
        # Task abschließen
        await client.finish_user_task(task["userTaskInstanceId"], result)
        print(f"Task abgeschlossen: {task['userTaskInstanceId']}")


asyncio.run(finish_user_task())
