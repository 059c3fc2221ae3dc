"""Starlette routes; the app's exception handlers answer in each face's format (no engine: served without lifespan)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.rest.problems import PROBLEM_BASE
from tests.apps import AnyoneVerifier
from tests.asgi_server import serve_asgi


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    app = create_app(dataclasses.replace(Settings(), max_body_bytes=2048))
    app.state.verifier = AnyoneVerifier()
    with serve_asgi(app) as served:
        yield served


def assert_problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM_BASE + kind
    assert response.json()["instance"] == f"urn:request:{response.headers['x-request-id']}"


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/", "/api/v1/user-tasks/", "/api/v1/user-tasks/x/y"])
def test_paths_under_the_api_that_name_no_resource_are_404_problems_for_any_method(origin: str, path: str) -> None:
    for method in ("GET", "POST", "OPTIONS"):
        assert_problem(httpx.request(method, origin + path), 404, "not-found")


def test_an_id_with_a_newline_is_a_bad_id_like_any_other(origin: str) -> None:
    response = httpx.get(origin + "/api/v1/user-tasks/a%0Ab")
    assert_problem(response, 400, "bad-request")
    assert response.json()["problems"][0]["field"] == "id"


def test_a_declared_body_over_the_limit_is_refused_even_where_no_body_is_read(origin: str) -> None:
    response = httpx.request("GET", origin + "/api/v1/user-tasks/x", content=b"x" * 4096)
    assert_problem(response, 413, "payload-too-large")
    assert "2048" in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_a_413_problem(origin: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield from [b"x" * 1024] * 4

    headers = {"Content-Type": "application/json"}
    assert_problem(
        httpx.post(origin + "/api/v1/user-tasks/x/finish", content=chunks(), headers=headers), 413, "payload-too-large"
    )


def test_wrong_methods_outside_the_rest_face_keep_starlettes_answers(origin: str) -> None:
    response = httpx.put(origin + "/graphql")
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert httpx.get(origin + "/no-such-page").text == "Not Found"
    assert_problem(httpx.post(origin + "/openapi.json"), 405, "method-not-allowed")
