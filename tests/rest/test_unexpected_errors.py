"""An unexpected exception is masked: a 500 problem with the request id, no internals; the log has the rest."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.rest.problems import PROBLEM_BASE
from tests.apps import broken_app
from tests.asgi_server import serve_asgi


def test_an_unexpected_exception_is_a_masked_500_problem(caplog: pytest.LogCaptureFixture) -> None:
    app = broken_app("secret internals at /srv/db")
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
