"""Seed: "Mehrere Tasks parallel verarbeiten"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def process_task(client: UserTaskClient, task: dict):
    """Verarbeitet einen einzelnen Task."""
    print(f"Verarbeite Task: {task['userTaskInstanceId']}")
    # Business-Logik
    result = {"processed": True, "timestamp": "2024-01-15T10:30:00Z"}
    # Task abschließen
    await client.finish_user_task(task["userTaskInstanceId"], result)
    print(f"Task abgeschlossen: {task['userTaskInstanceId']}")


async def process_all_tasks():
    async with UserTaskClient(ENGINE_URL) as client:
        # Alle Tasks abrufen
        user_tasks = await client.get_user_tasks()
        # Parallel verarbeiten
        tasks = [process_task(client, task) for task in user_tasks]
        # Alle Tasks awaiten
        await asyncio.gather(*tasks)
        print(f"{len(user_tasks)} Tasks verarbeitet")


asyncio.run(process_all_tasks())
