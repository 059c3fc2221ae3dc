"""Seed: "Best Practices / Retry-Logic implementieren".

The seed shows only `finish_with_retry`; the `main` below (not in the seed) runs it over the waiting tasks.
Note: the client already retries reads itself; a write is repeated here only because the seed does so.
"""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def finish_with_retry(client, task_id, result, max_retries=3):
    """Finish mit automatischem Retry."""
    for attempt in range(max_retries):
        try:
            await client.finish_user_task(task_id, result)
            return True
        except Exception:
            if attempt < max_retries - 1:
                await asyncio.sleep(2**attempt)  # Exponential backoff
                continue
            raise
    return False


async def main():
    async with UserTaskClient(ENGINE_URL) as client:
        for task in await client.get_user_tasks():
            done = await finish_with_retry(client, task["userTaskInstanceId"], {"approved": True})
            print(f"Task {task['userTaskInstanceId']} abgeschlossen: {done}")


asyncio.run(main())
