"""Seed: "User Task abschließen / Mit Validierung"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def finish_with_validation():
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
        for task in user_tasks:
            # Token-Daten prüfen
            token = task.get("token", {})
            # Validierung
            if "amount" in token and token["amount"] > 10000:
                result = {"approved": False, "reason": "Betrag zu hoch"}
            else:
                result = {"approved": True}
            # Task abschließen
            await client.finish_user_task(task["userTaskInstanceId"], result)
            print(f"Task verarbeitet: {task['flowNodeId']}")


asyncio.run(finish_with_validation())
