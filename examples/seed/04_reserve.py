"""Seed: "User Task reservieren"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def reserve_user_task():
    async with UserTaskClient(ENGINE_URL) as client:
        # Tasks abrufen
        user_tasks = await client.get_user_tasks()
        if not user_tasks:
            print("Keine User Tasks verfügbar")
            return
        # Ersten Task reservieren
        task = user_tasks[0]
        owner_id = "user@example.com"
        result = await client.reserve_user_task(task["userTaskInstanceId"], owner_id)
        print(f"Task reserviert für {owner_id}")
        print(f"Result: {result}")


asyncio.run(reserve_user_task())
