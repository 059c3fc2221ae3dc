"""Seed: "Praktische Beispiele / Approval-Workflow"."""

import asyncio
import os

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def approval_workflow():
    """Automatisierter Approval-Workflow."""
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
        for task in user_tasks:
            token = task.get("token", {})
            # Geschäftsregeln anwenden
            amount = token.get("amount", 0)
            customer_type = token.get("customerType", "regular")
            # Auto-Approve für kleine Beträge
            if amount < 1000:
                result = {"approved": True, "autoApproved": True, "reason": "Betrag unter Schwellwert"}
            # VIP-Kunden bevorzugt behandeln
            elif customer_type == "vip":
                result = {"approved": True, "priority": "high", "reason": "VIP-Kunde"}
            # Manuelle Review erforderlich
            else:
                result = {
                    "approved": False,
                    "requiresReview": True,
                    "reason": "Manuelle Prüfung erforderlich",
                }
            await client.finish_user_task(task["userTaskInstanceId"], result)
            print(f"Task {task['flowNodeId']} verarbeitet: {result['approved']}")


asyncio.run(approval_workflow())
