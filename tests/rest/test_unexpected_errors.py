"""An unexpected exception is masked: a 500 problem with the request id, no internals; the log has the rest."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.core.domain import Caller
from gateway.core.service import ServiceLimits
from gateway.rest.problems import PROBLEM_BASE
from tests.asgi_server import serve_asgi


class BrokenService:
    limits = ServiceLimits()

    async def list_tasks(self, caller: Caller, query: Any) -> Any:
        raise RuntimeError("secret internals at /srv/db")


class AnyoneVerifier:
    async def caller(self, authorization: str | None) -> Caller:
        return Caller(user_id="tester")


def test_an_unexpected_exception_is_a_masked_500_problem(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings())  # served without its lifespan: no engine, the broken service below instead
    app.state.service = BrokenService()
    app.state.verifier = AnyoneVerifier()
    with serve_asgi(app) as origin, caplog.at_level(logging.ERROR):
        response = httpx.get(origin + "/api/v1/user-tasks", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "internal-error"
    assert body["code"] == "INTERNAL_SERVER_ERROR"
    assert body["instance"] == "urn:request:req-500"
    assert "req-500" in body["detail"]
    assert "secret" not in response.text
    assert any("req-500" in record.getMessage() and record.exc_info for record in caplog.records)
