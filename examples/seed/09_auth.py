"""Seed: "Mit Authentifizierung".

The authority URL is read from PROCESSCUBE_AUTHORITY_URL (the seed's http://localhost:11235 by default),
so that the script can run against the embedded engine's authority.
"""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")
AUTHORITY_URL = os.environ.get("PROCESSCUBE_AUTHORITY_URL", "http://localhost:11235")


async def process_with_auth():
    # Client mit OAuth 2.0
    async with UserTaskClient(
        ENGINE_URL, client_id="user-task-worker", client_secret="secret-key", authority_url=AUTHORITY_URL
    ) as client:
        user_tasks = await client.get_user_tasks()
        for task in user_tasks:
            await client.finish_user_task(task["userTaskInstanceId"], {"approved": True})


asyncio.run(process_with_auth())
