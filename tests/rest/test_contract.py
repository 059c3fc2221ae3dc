"""The REST contract: the served document is openapi/openapi.yaml, it says what the code does, and schemathesis
(every check, including the stateful phase through the document's OpenAPI links) finds nothing against a live
gateway in front of an engine holding demo-like data.

The default run has a time budget of ``FAST_BUDGET_SECONDS``; ``pytest --run-slow`` (``make test-slow``) adds a run
of ``SLOW_BUDGET_SECONDS``. Each prints its summary line (cases, checks, failures, seed) and the command.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from gateway.config import Settings
from gateway.core import errors, limits
from gateway.core.idempotency import IdempotencyKeyReused
from gateway.middleware import BodyTooLarge, body_too_large
from gateway.rest import params
from gateway.rest.openapi import OPENAPI_FILE, load_document
from gateway.rest.problems import PROBLEM_BASE, PROBLEM_TYPES, InternalError, PayloadTooLarge
from tests.rest.conftest import deploy_examples
from tests.servers import REPO, EngineServer, GatewayServer, gateway_in_front_of

FAST_BUDGET_SECONDS = 40
SLOW_BUDGET_SECONDS = 600
HOOKS = "tests.rest.schemathesis_hooks"

DOCUMENT = load_document()
COMPONENTS = DOCUMENT["components"]


# -- the served document -------------------------------------------------------------------------------------


def test_the_served_yaml_is_the_file(gateway: GatewayServer) -> None:
    response = httpx.get(gateway.url + "/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.content == OPENAPI_FILE.read_bytes()


def test_the_served_json_is_the_files_document(gateway: GatewayServer) -> None:
    response = httpx.get(gateway.url + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DOCUMENT
    assert response.json()["openapi"] == "3.1.0"


def test_the_documents_refuse_other_methods_with_problems(gateway: GatewayServer) -> None:
    response = httpx.post(gateway.url + "/openapi.json")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["content-type"] == "application/problem+json"


def test_the_docs_page_loads_swagger_ui_and_the_document_from_this_gateway(gateway: GatewayServer) -> None:
    page = httpx.get(gateway.url + "/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '"url": "/openapi.json"' in page.text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(assets) == 2
    for asset in assets:
        assert httpx.get(gateway.url + asset).status_code == 200, asset
    assert re.search(r"""(?:src|href)\s*=\s*["']https?://""", page.text) is None


# -- the document says what the code does ----------------------------------------------------------------------


def _pattern(parameter: str) -> str:
    schema = COMPONENTS["parameters"][parameter]["schema"]
    while "$ref" in schema or schema.get("type") == "array":
        schema = _resolve(schema["$ref"]) if "$ref" in schema else schema["items"]
    return str(schema["pattern"])


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def test_the_contracts_patterns_are_the_ones_the_code_checks() -> None:
    assert _pattern("TaskId") == params.TASK_ID_PATTERN
    assert _pattern("IdFilter") == params.TASK_ID_PATTERN
    assert _pattern("TokenFilter") == params.TOKEN_PREDICATE_PATTERN
    assert _pattern("Sort") == params.SORT_KEY_PATTERN
    assert _pattern("Cursor") == params.CURSOR_PATTERN
    assert _pattern("StartedAfterFilter") == params.DATE_TIME_PATTERN
    assert _pattern("IdempotencyKey") == params.IDEMPOTENCY_KEY_PATTERN
    assert COMPONENTS["parameters"]["IdempotencyKey"]["schema"]["maxLength"] == params.MAX_IDEMPOTENCY_KEY_LENGTH
    assert COMPONENTS["parameters"]["Cursor"]["schema"]["maxLength"] == params.MAX_CURSOR_LENGTH
    assert COMPONENTS["schemas"]["FilterValue"]["maxLength"] == params.MAX_STRING_LENGTH


def test_the_contracts_limits_are_the_cores() -> None:
    """The numbers of gateway.core.limits (both faces' one source) are the ones the contract states."""
    parameters = COMPONENTS["parameters"]
    assert parameters["TokenFilter"]["schema"]["maxItems"] == limits.MAX_TOKEN_PREDICATES
    assert parameters["TokenFilter"]["schema"]["items"]["maxLength"] == limits.MAX_TOKEN_PREDICATE_LENGTH
    assert parameters["Sort"]["schema"]["maxItems"] == limits.MAX_SORT_KEYS
    assert parameters["Sort"]["schema"]["items"]["maxLength"] == limits.MAX_SORT_KEY_LENGTH
    assert parameters["IdFilter"]["schema"]["maxItems"] == limits.MAX_LIST_ITEMS
    assert COMPONENTS["schemas"]["FilterValues"]["maxItems"] == limits.MAX_LIST_ITEMS
    assert COMPONENTS["schemas"]["FilterValue"]["maxLength"] == limits.MAX_STRING_LENGTH
    assert COMPONENTS["schemas"]["TaskId"]["pattern"] == limits.TASK_ID_PATTERN
    description = DOCUMENT["info"]["description"]
    assert f"nested at most {limits.MAX_DOCUMENT_DEPTH} levels deep" in description
    assert f"nested at most {limits.MAX_JSON_DEPTH} levels deep" in description
    assert f"{limits.MAX_RESULT_WEIGHT:,} units" in description
    listing = DOCUMENT["paths"]["/api/v1/user-tasks"]["get"]["description"]
    assert f"at most {limits.MAX_ENGINE_FILTER_LENGTH} characters" in listing
    # the REST face has no copies of its own
    for name in ("MAX_STRING_LENGTH", "MAX_LIST_ITEMS", "MAX_TOKEN_PREDICATES", "MAX_SORT_KEYS", "MAX_JSON_DEPTH"):
        assert getattr(params, name) is getattr(limits, name), name
    assert params.TASK_ID_PATTERN is limits.TASK_ID_PATTERN


def test_the_list_parameters_are_the_ones_the_code_takes() -> None:
    operation = DOCUMENT["paths"]["/api/v1/user-tasks"]["get"]
    names = {_resolve(parameter["$ref"])["name"] for parameter in operation["parameters"]}
    assert names == params.LIST_TASKS_PARAMETERS


def test_the_contracts_limits_are_the_default_settings() -> None:
    settings = Settings()
    limit = COMPONENTS["parameters"]["Limit"]["schema"]
    assert (limit["default"], limit["maximum"]) == (settings.default_page_size, settings.max_page_size)
    for name in ("BatchReserveRequest", "BatchCancelRequest"):
        assert COMPONENTS["schemas"][name]["properties"]["ids"]["maxItems"] == settings.max_batch_size
    assert COMPONENTS["schemas"]["BatchFinishRequest"]["properties"]["items"]["maxItems"] == settings.max_batch_size


def _error_classes() -> list[type[errors.GatewayError]]:
    # SubscriptionEnded is the base of the reasons a live subscription ends; only its subclasses reach a client
    # (its own instances say that the subscriber itself closed the subscription)
    found = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value)
        and issubclass(value, errors.GatewayError)
        and value not in (errors.GatewayError, errors.SubscriptionEnded)
    ]
    return [*found, IdempotencyKeyReused]


def test_every_error_code_has_its_own_problem_type_listed_in_the_contract() -> None:
    types_by_code: dict[str, set[str]] = {}
    for error_class in _error_classes():
        types_by_code.setdefault(error_class.code, set()).add(PROBLEM_TYPES[error_class].slug)
    assert all(len(slugs) == 1 for code, slugs in types_by_code.items() if code != "BAD_REQUEST"), types_by_code
    codes = COMPONENTS["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert set(codes) == {*types_by_code, InternalError.code}
    description = DOCUMENT["info"]["description"]
    for kind in PROBLEM_TYPES.values():
        assert f"| {kind.slug} |" in description, kind.slug
    assert len({kind.uri for kind in PROBLEM_TYPES.values()}) == len(PROBLEM_TYPES)


def test_the_413_uses_the_problem_table() -> None:
    scope = {"type": "http", "method": "POST", "path": "/api/v1/user-tasks/x/finish", "headers": []}
    response = asyncio.run(body_too_large(Request({**scope, "state": {"request_id": "r-1"}}), BodyTooLarge(1024)))
    assert (response.status_code, response.media_type) == (413, "application/problem+json")
    assert json.loads(response.body)["type"] == PROBLEM_TYPES[PayloadTooLarge].uri
    assert PROBLEM_TYPES[PayloadTooLarge].uri.startswith(PROBLEM_BASE)


# -- schemathesis --------------------------------------------------------------------------------------------


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    """A fresh engine with demo-like data (approvals of every kind, leave requests, onboardings) and a gateway."""
    with EngineServer(data_dir=tmp_path / "engine") as engine:
        deploy_examples(engine)
        for number in range(24):
            amount = (500, 1500, 25000, 750, 12000, 99)[number % 6] + number
            engine.start_instance(
                "ApprovalProcess",
                {"amount": amount, "customerType": ("vip", "regular")[number % 2], "customerId": f"C-{1001 + number}"},
            )
        for model in ("LeaveRequest", "OnboardingProcess"):
            for _ in range(4):
                engine.start_instance(model, {"requestedBy": "demo"})
        gateway = gateway_in_front_of(engine.url, tmp_path / "gateway").start()
        try:
            yield gateway
        finally:
            gateway.stop()


@dataclass(frozen=True)
class Summary:
    cases: int
    checks: int
    check_kinds: int
    failures: int
    seed: str

    def line(self) -> str:
        return (
            f"schemathesis: {self.cases} test cases, {self.checks} checks ({self.check_kinds} kinds),"
            f" {self.failures} failures (seed {self.seed})"
        )


def summarise(report: Path) -> Summary:
    cases = checks = failures = 0
    kinds: set[str] = set()
    seed = "?"
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            if "Initialize" in event:
                seed = str(event["Initialize"]["seed"])
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished["recorder"]
            cases += len(recorder.get("cases", {}))  # a skipped scenario has none
            for results in recorder.get("checks", {}).values():
                checks += len(results)
                kinds.update(result["name"] for result in results)
                failures += sum(result["status"] == "failure" for result in results)
    return Summary(cases, checks, len(kinds), failures, seed)


def run_schemathesis(gateway: GatewayServer, report_dir: Path, max_time: int) -> tuple[Summary, str]:
    arguments = [
        "run",
        str(OPENAPI_FILE.relative_to(REPO)),
        "--url",
        gateway.url,
        "--checks",
        "all",
        "--max-time",
        str(max_time),
        "--report",
        "ndjson",
        "--report-dir",
        str(report_dir),
    ]
    shown = f"SCHEMATHESIS_HOOKS={HOOKS} .venv/bin/schemathesis {' '.join(arguments)}"
    completed = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", *arguments],
        cwd=REPO,
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=max_time + 300,
        check=False,
    )
    [report] = report_dir.glob("*.ndjson")
    summary = summarise(report)
    lines = [line.strip() for line in completed.stdout.splitlines() if line.strip()]
    generated = [line for line in lines if " generated" in line]
    print(f"\n{summary.line()}\n{' / '.join([*generated, lines[-1].strip('= ')])}\ncommand: {shown}")
    assert completed.returncode == 0, completed.stdout[-20_000:] + completed.stderr[-5_000:]
    return summary, completed.stdout


def _assert_covered(summary: Summary, output: str) -> None:
    assert summary.failures == 0
    assert summary.check_kinds >= 10  # --checks all: every check ran on some case
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, phase


def test_schemathesis_finds_nothing_in_the_contract(demo_gateway: GatewayServer, tmp_path: Path) -> None:
    summary, output = run_schemathesis(demo_gateway, tmp_path / "report", FAST_BUDGET_SECONDS)
    _assert_covered(summary, output)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_BUDGET_SECONDS + 600)
def test_schemathesis_finds_nothing_in_the_contract_in_a_long_run(demo_gateway: GatewayServer, tmp_path: Path) -> None:
    summary, output = run_schemathesis(demo_gateway, tmp_path / "report", SLOW_BUDGET_SECONDS)
    _assert_covered(summary, output)
