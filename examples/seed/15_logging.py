"""Seed: "Best Practices / Logging hinzufügen"."""

import asyncio
import logging
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")

logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
logger = logging.getLogger(__name__)


async def process_with_logging():
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
        logger.info(f"Gefundene Tasks: {len(user_tasks)}")
        for task in user_tasks:
            logger.debug(f"Verarbeite Task: {task['userTaskInstanceId']}")
            await client.finish_user_task(task["userTaskInstanceId"], {"approved": True})
            logger.info(f"Task abgeschlossen: {task['flowNodeId']}")


asyncio.run(process_with_logging())
