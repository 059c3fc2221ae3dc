"""Seed: "Best Practices / Context Manager verwenden": both forms the seed shows, wrapped in functions."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def recommended():
    # ✅ Empfohlen
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
    return user_tasks  # noqa: RET504 - the seed's shape


async def not_recommended():
    # ❌ Nicht empfohlen (manuelle Ressourcen-Verwaltung)
    client = UserTaskClient(ENGINE_URL)
    user_tasks = await client.get_user_tasks()
    await client.close()
    return user_tasks


async def main():
    first = await recommended()
    second = await not_recommended()
    print(f"{len(first)} {len(second)}")


asyncio.run(main())
