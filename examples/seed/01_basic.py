"""Seed: "Grundlegendes Beispiel". Only the import and the engine URL differ from the seed document."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def process_user_tasks(engine_url: str):
    """Verarbeitet User Tasks asynchron."""
    async with UserTaskClient(engine_url) as client:
        # User Tasks abrufen
        user_tasks = await client.get_user_tasks()
        for task in user_tasks:
            print(f"User Task: {task['userTaskInstanceId']}")
            print(f"Task-Name: {task['flowNodeId']}")
            print(f"Token: {task['token']}")
            # Task abschließen
            result = await client.finish_user_task(
                task["userTaskInstanceId"], {"approved": True, "comment": "Genehmigt"}
            )
            print(f"Task abgeschlossen: {result}")


# Event Loop starten
asyncio.run(process_user_tasks(ENGINE_URL))
