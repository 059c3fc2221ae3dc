"""Seed: "Reservierung aufheben"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def cancel_reservation():
    async with UserTaskClient(ENGINE_URL) as client:
        # Tasks abrufen
        user_tasks = await client.get_user_tasks()
        # Reservierung aufheben
        for task in user_tasks:
            if task.get("reservedFor"):
                await client.cancel_reservation_user_task(task["userTaskInstanceId"])
                print(f"Reservierung aufgehoben: {task['userTaskInstanceId']}")


asyncio.run(cancel_reservation())
