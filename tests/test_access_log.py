"""The gateway's log: one JSON line per request and per WebSocket connection (logger ``gateway.access``), every other
record as JSON too, a readable text format, and never a secret.

Real gateway processes (the log format is process-wide): their stderr goes to a file the tests read.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from gateway.adapters.embedded_engine import forward_output
from gateway.config import Settings
from gateway.core.domain import Caller
from gateway.core.errors import Unauthenticated
from gateway.logs import JsonFormatter, TextFormatter, configure_logging, redact
from gateway.record import RequestRecord, enter, leave
from tests.conftest import deploy_examples
from tests.embedded_engine.test_http_api import token_for
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of, poll

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ACCESS_FIELDS = {
    "ts",
    "level",
    "logger",
    "msg",
    "requestId",
    "face",
    "operation",
    "method",
    "path",
    "status",
    "code",
    "sub",
    "durationMs",
    "engineCalls",
}
BODY_SECRET = "s3cr3t-body-value-4711"
VARIABLE_SECRET = "s3cr3t-graphql-variable-4712"
QUERY_SECRET = "s3cr3t-query-token-4713"
BOGUS_TOKEN = "s3cr3t-bogus-bearer-4714"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    with EngineServer(data_dir=tmp_path_factory.mktemp("log-engine") / "data") as engine:
        yield deploy_examples(engine)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, engine: EngineServer) -> Iterator[GatewayServer]:
    gateway = gateway_in_front_of(
        engine.url, tmp_path_factory.mktemp("log-gateway"), GATEWAY_LOG_LEVEL="info", GATEWAY_LOG_FORMAT="json"
    ).start()
    yield gateway
    gateway.stop()


def json_lines(gateway: GatewayServer) -> list[dict[str, Any]]:
    lines = [line for line in gateway.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line that is not JSON: {line!r}")
    return parsed


def access_line(gateway: GatewayServer, request_id: str) -> dict[str, Any]:
    """The access log line of the request with this id (waiting for it: it is written after the answer)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [
            line
            for line in json_lines(gateway)
            if line.get("logger") == "gateway.access" and line.get("requestId") == request_id
        ]
        return bool(found)

    poll(written, within=10)
    assert len(found) == 1, found
    return found[0]


def subject_of(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def test_one_json_line_per_request_with_every_field_and_no_secret(engine: EngineServer, gateway: GatewayServer) -> None:
    alice = token_for(engine, "alice", "alice-secret")
    ids = {name: f"log-{name}-{uuid.uuid4().hex[:8]}" for name in ("list", "bogus", "finish", "graphql", "query")}

    listed = httpx.get(
        gateway.url + "/api/v1/user-tasks",
        headers={"Authorization": f"Bearer {alice}", "X-Request-ID": ids["list"]},
    )
    assert listed.status_code == 200
    bogus = httpx.get(
        gateway.url + "/api/v1/user-tasks",
        headers={"Authorization": f"Bearer {BOGUS_TOKEN}", "X-Request-ID": ids["bogus"]},
    )
    assert bogus.status_code == 401
    finished = httpx.post(
        f"{gateway.url}/api/v1/user-tasks/{uuid.uuid4()}/finish",
        json={"result": {"comment": BODY_SECRET, "password": BODY_SECRET}},
        headers={"X-Request-ID": ids["finish"], "Authorization": f"Bearer {alice}"},
    )
    assert finished.status_code == 404
    query = "query Q($c: String!) { userTasks(filter: {correlationId: [$c]}) { totalCount } }"
    answered = httpx.post(
        gateway.graphql_url,
        json={"query": query, "variables": {"c": VARIABLE_SECRET}},
        headers={"Authorization": f"Bearer {alice}", "X-Request-ID": ids["graphql"]},
    )
    assert answered.status_code == 200
    assert answered.json()["data"]["userTasks"]["totalCount"] == 0
    httpx.get(
        gateway.url + "/api/v1/user-tasks",
        params={"access_token": QUERY_SECRET, "limit": "5"},
        headers={"X-Request-ID": ids["query"]},
    )

    line = access_line(gateway, ids["list"])
    assert line.keys() >= ACCESS_FIELDS
    assert ISO_UTC.match(line["ts"])
    assert (line["level"], line["logger"]) == ("info", "gateway.access")
    assert line["msg"] == "GET /api/v1/user-tasks 200"
    assert (line["face"], line["operation"], line["method"], line["path"]) == (
        "rest",
        "list_user_tasks",
        "GET",
        "/api/v1/user-tasks",
    )
    assert (line["status"], line["code"], line["sub"]) == (200, "OK", subject_of(alice))
    assert isinstance(line["durationMs"], int | float)
    assert line["durationMs"] >= 0
    assert line["engineCalls"] == 1

    line = access_line(gateway, ids["bogus"])
    assert (line["status"], line["code"], line["sub"], line["engineCalls"]) == (401, "UNAUTHENTICATED", None, 0)

    line = access_line(gateway, ids["finish"])
    assert (line["operation"], line["status"], line["code"]) == ("finish_user_task", 404, "TASK_NOT_FOUND")
    assert line["sub"] == subject_of(alice)

    line = access_line(gateway, ids["graphql"])
    assert (line["face"], line["operation"], line["method"], line["path"]) == (
        "graphql",
        "query.userTasks",
        "POST",
        "/graphql",
    )
    assert (line["status"], line["code"], line["sub"], line["engineCalls"]) == (200, "OK", subject_of(alice), 1)

    line = access_line(gateway, ids["query"])
    assert line["path"] == "/api/v1/user-tasks"  # never the query string
    assert line["sub"] is None  # anonymous

    everything = gateway.log()
    for secret in (alice, BOGUS_TOKEN, BODY_SECRET, VARIABLE_SECRET, QUERY_SECRET, "alice-secret"):
        assert secret not in everything


def test_a_websocket_connection_is_one_line_when_it_ends_without_the_token_of_connection_init(
    engine: EngineServer, gateway: GatewayServer
) -> None:
    alice = token_for(engine, "alice", "alice-secret")
    request_id = f"log-ws-{uuid.uuid4().hex[:8]}"
    subscription = (
        'subscription { userTaskList(filter: {correlationId: ["' + str(uuid.uuid4()) + '"]}) { __typename } }'
    )

    async def scenario() -> None:
        url = gateway.graphql_url.replace("http://", "ws://")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, protocols=["graphql-transport-ws"], headers={"X-Request-ID": request_id}) as socket,
        ):
            await socket.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {alice}"}})
            assert json.loads((await socket.receive(timeout=20)).data)["type"] == "connection_ack"
            await socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": subscription}})
            first = json.loads((await socket.receive(timeout=20)).data)
            assert first["payload"]["data"]["userTaskList"]["__typename"] == "UserTaskListSnapshot", first
            await socket.send_json({"id": "1", "type": "complete"})

    asyncio.run(scenario())
    line = access_line(gateway, request_id)
    assert line.keys() >= ACCESS_FIELDS
    assert (line["face"], line["operation"], line["method"], line["path"]) == ("graphql", "websocket", "WS", "/graphql")
    assert (line["status"], line["code"], line["sub"], line["operations"]) == (101, "OK", subject_of(alice), 1)
    assert isinstance(line["closeCode"], int)
    assert line["engineCalls"] >= 1  # the snapshot's page, read with alice's token
    assert alice not in gateway.log()


def test_every_other_record_is_json_too(gateway: GatewayServer) -> None:
    lines = json_lines(gateway)  # fails on any line that is not JSON
    loggers = {line["logger"] for line in lines}
    assert {"gateway", "uvicorn.error", "gateway.access"} <= loggers, loggers
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= line.keys()
        assert "color_message" not in line
    assert not any("WebSocket" in line["msg"] and line["logger"].startswith("uvicorn") for line in lines)


def test_the_text_format_is_one_readable_line_per_request(tmp_path_factory: pytest.TempPathFactory) -> None:
    with EngineServer(data_dir=tmp_path_factory.mktemp("text-engine") / "data") as engine:
        gateway = gateway_in_front_of(
            engine.url, tmp_path_factory.mktemp("text-gateway"), GATEWAY_LOG_LEVEL="info", GATEWAY_LOG_FORMAT="text"
        ).start()
        try:
            request_id = f"text-{uuid.uuid4().hex[:8]}"
            assert (
                httpx.get(gateway.url + "/api/v1/user-tasks", headers={"X-Request-ID": request_id}).status_code == 200
            )
            poll(lambda: f"[{request_id}]" in gateway.log(), within=10)
        finally:
            gateway.stop()
        [line] = [line for line in gateway.log().splitlines() if f"[{request_id}]" in line]
        assert re.match(
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO +gateway\.access: GET /api/v1/user-tasks 200 OK"
            r" list_user_tasks [\d.]+ms engine=\d+ sub=- \[" + request_id + r"\]$",
            line,
        ), line
        assert not any(line.lstrip().startswith("{") for line in gateway.log().splitlines())
        assert "Application startup complete." in gateway.log()


# -- the formatters on their own -------------------------------------------------------------------------------


def _record(message: str, *args: object, name: str = "gateway") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_credentials_in_messages_are_blanked() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    text = redact(f"Authorization: Bearer {jwt}; token {jwt}; redis://user:hunter2@redis:6379/0; bearer abc.def")
    assert jwt not in text
    assert "hunter2" not in text
    assert "abc.def" not in text
    assert "redis://user:[redacted]@redis:6379/0" in text
    line = json.loads(JsonFormatter().format(_record("refused %s", f"Bearer {jwt}")))
    assert jwt not in json.dumps(line)
    assert jwt not in TextFormatter().format(_record("refused %s", f"Bearer {jwt}"))


def test_records_written_in_a_request_carry_its_id() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # pytest's own capture handlers: put back after
    configure_logging(Settings(log_format="json", log_level="info"), stream)
    try:
        record = RequestRecord(face="rest", method="GET", path="/api/v1/user-tasks", request_id="rid-1")
        token = enter(record)
        try:
            logging.getLogger("gateway.test").warning("inside")
        finally:
            leave(token)
        logging.getLogger("gateway.test").warning("outside")
        inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
        assert inside["requestId"] == "rid-1"
        assert inside["msg"] == "inside"
        assert "requestId" not in outside
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_the_embedded_engines_output_becomes_records_of_the_gateway(caplog: pytest.LogCaptureFixture) -> None:
    output = (
        b"2026-11-26 03:00:00,123 WARNING embedded_engine.core: a timer fired late\n"
        b"Traceback (most recent call last):\n"
        b"  File 'x.py', line 1\n"
        b"2026-11-26 03:00:01,456 ERROR uvicorn.error: Exception in ASGI application\n"
        b"plain line\n"
    )

    async def forward() -> None:
        stream = asyncio.StreamReader()
        stream.feed_data(output)
        stream.feed_eof()
        await forward_output(stream)

    with caplog.at_level(logging.DEBUG, logger="embedded_engine"):
        asyncio.run(forward())
    records = [record for record in caplog.records if record.name == "embedded_engine"]
    assert [(record.levelname, record.getMessage(), getattr(record, "engineLogger", None)) for record in records] == [
        ("WARNING", "a timer fired late", "embedded_engine.core"),
        ("WARNING", "Traceback (most recent call last):", "embedded_engine.core"),
        ("WARNING", "  File 'x.py', line 1", "embedded_engine.core"),
        ("ERROR", "Exception in ASGI application", "uvicorn.error"),
        ("ERROR", "plain line", "uvicorn.error"),
    ]
    line = json.loads(JsonFormatter().format(records[0]))
    assert (line["logger"], line["engineLogger"], line["level"]) == (
        "embedded_engine",
        "embedded_engine.core",
        "warning",
    )


def test_a_text_line_stays_one_line_whatever_the_path() -> None:
    record = _record("GET %s 404", "/api/v1/user-tasks/a\nFAKE 2026-01-01 INFO forged\x1b[2J")
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert "\x1b" not in line
    assert "a\\nFAKE" in line
    as_json = JsonFormatter().format(record)
    assert "\n" not in as_json
    assert json.loads(as_json)["msg"].endswith("\x1b[2J 404")  # JSON escapes control characters itself


def test_the_one_rule_of_the_request_record() -> None:
    record = RequestRecord(face="graphql", method="WS", path="/graphql", request_id="r", websocket=True)
    record.note("websocket", caller=Unauthenticated("bad header token"))
    assert (record.operation, record.code, record.sub) == ("websocket", "UNAUTHENTICATED", None)
    record.note(caller=Caller(user_id="alice", token="t"))  # connection_init's token, verified
    assert (record.code, record.sub) == (None, "alice")
    record.note(caller=Caller(user_id="dummy_token"))  # anonymous
    assert record.sub is None
    record.note(code="TASK_NOT_FOUND", caller=Unauthenticated("later"))
    assert record.code == "TASK_NOT_FOUND"
    record.status = 404
    assert record.final_code() == "TASK_NOT_FOUND"
    assert (
        RequestRecord(face="other", method="GET", path="/x", request_id="r", status=404).final_code() == "BAD_REQUEST"
    )
