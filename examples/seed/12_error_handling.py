"""Seed: "Fehlerbehandlung"."""

import asyncio
import os

from gateway.engine import ProcessCubeException, UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def safe_process_tasks():
    try:
        async with UserTaskClient(ENGINE_URL) as client:
            user_tasks = await client.get_user_tasks()
            for task in user_tasks:
                try:
                    await client.finish_user_task(task["userTaskInstanceId"], {"approved": True})
                except ProcessCubeException as e:
                    print(f"Fehler bei Task {task['userTaskInstanceId']}: {e}")
                    continue
    except Exception as e:
        print(f"Allgemeiner Fehler: {e}")


asyncio.run(safe_process_tasks())
