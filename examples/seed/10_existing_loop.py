"""Seed: "Event Loop Management / Mit bestehendem Event Loop"."""

import os

from gateway.engine import UserTaskClient, get_or_create_loop

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def main():
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
        for task in user_tasks:
            print(f"Task: {task['userTaskInstanceId']}")


# Event Loop holen oder erstellen
loop = get_or_create_loop()
loop.run_until_complete(main())
loop.close()
