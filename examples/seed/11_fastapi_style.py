"""Seed: "In bestehendem Async-Context" (a FastAPI endpoint).

FastAPI is not a dependency of this project: the endpoint is the seed's async function unchanged, mounted in
a Starlette app (what FastAPI is built on) and called once through httpx's ASGI transport, as a request would.
"""

import asyncio
import json
import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")


async def process_tasks():
    """FastAPI Endpoint - läuft bereits in Event Loop."""
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
        results = []
        for task in user_tasks:
            await client.finish_user_task(task["userTaskInstanceId"], {"approved": True})
            results.append(task["userTaskInstanceId"])
        return {"processed": len(results), "tasks": results}


async def endpoint(request: Request) -> JSONResponse:
    return JSONResponse(await process_tasks())


app = Starlette(routes=[Route("/process-tasks", endpoint, methods=["POST"])])


async def call_endpoint() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http:
        response = await http.post("/process-tasks")
        response.raise_for_status()
        print(json.dumps(response.json()))


if __name__ == "__main__":
    asyncio.run(call_endpoint())
