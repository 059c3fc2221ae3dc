"""Gateway apps served without their lifespan (no engine), with a stand-in where a test needs one."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from gateway.app import create_app
from gateway.config import Settings
from gateway.core.cache import ReadCache
from gateway.core.domain import Caller
from gateway.core.service import ServiceLimits


class AnyoneVerifier:
    """Every request is the caller ``tester``, token or not."""

    async def caller(self, authorization: str | None) -> Caller:
        return Caller(user_id="tester")


class BrokenService:
    """A service whose listing fails with a bug (a RuntimeError saying ``message``)."""

    limits = ServiceLimits()

    def __init__(self, message: str) -> None:
        self.message = message

    async def list_tasks(self, caller: Caller, query: Any) -> Any:
        raise RuntimeError(self.message)


def broken_app(message: str) -> Starlette:
    """An app whose task listing raises an unexpected exception, on both faces."""
    app = create_app(Settings())
    app.state.service = BrokenService(message)
    app.state.verifier = AnyoneVerifier()
    app.state.cache = ReadCache(ttl_seconds=0, max_entries=10)  # /metrics reads it
    return app
