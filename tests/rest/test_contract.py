"""The REST contract: the served document is openapi/openapi.yaml, it says what the code does, and the fuzzers'
configuration (schemathesis.toml) allows only refusals that the document declares.

The fuzz runs themselves (plain schemathesis against a live gateway, no hooks) are tests/contract/test_fuzz_rest.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import tomllib
from typing import Any

import httpx
from starlette.requests import Request

from gateway.config import Settings
from gateway.core import errors, limits
from gateway.core.idempotency import IdempotencyKeyReused
from gateway.middleware import BodyTooLarge, body_too_large
from gateway.rest import params
from gateway.rest.openapi import OPENAPI_FILE, load_document
from gateway.rest.problems import PROBLEM_BASE, PROBLEM_TYPES, InternalError, PayloadTooLarge
from tests.servers import REPO, GatewayServer

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
    assert json.loads(bytes(response.body))["type"] == PROBLEM_TYPES[PayloadTooLarge].uri
    assert PROBLEM_TYPES[PayloadTooLarge].uri.startswith(PROBLEM_BASE)


# -- the fuzzers' configuration (schemathesis.toml) says only what the document declares --------------------------

FUZZ_CONFIG = REPO / "schemathesis.toml"
#: schemathesis's own default for positive_data_acceptance: a schema-valid request may get these.
FUZZ_DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
WRITE_OPERATIONS = {
    "reserveUserTask",
    "cancelUserTaskReservation",
    "finishUserTask",
    "reserveUserTasks",
    "cancelUserTaskReservations",
    "finishUserTasks",
}


def _operations() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in DOCUMENT["paths"].values():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete"):
                found[operation["operationId"]] = operation
    return found


def _response(operation: dict[str, Any], status: str) -> dict[str, Any]:
    response = operation["responses"][status]
    return _resolve(response["$ref"]) if "$ref" in response else dict(response)


def _fuzz_project() -> dict[str, Any]:
    config = tomllib.loads(FUZZ_CONFIG.read_text(encoding="utf-8"))
    assert set(config) == {"project"}  # nothing for every schema: a GraphQL run from here is not touched
    [project] = config["project"]
    assert project["title"] == DOCUMENT["info"]["title"]  # how schemathesis matches it to the document
    return dict(project)


def _ids(entry: dict[str, Any]) -> list[str]:
    ids = entry["include-operation-id"]
    return [ids] if isinstance(ids, str) else list(ids)


def test_the_fuzzer_configuration_leaves_out_only_the_event_stream() -> None:
    operations = _operations()
    disabled = [
        name for entry in _fuzz_project()["operations"] if entry.get("enabled") is False for name in _ids(entry)
    ]
    assert disabled == ["streamUserTaskEvents"]
    assert list(_response(operations["streamUserTaskEvents"], "200")["content"]) == ["text/event-stream"]


def test_the_fuzzer_configuration_allows_only_declared_refusals() -> None:
    """Each status schemathesis.toml allows a schema-valid request beyond schemathesis's default is a problem the
    operation declares; the operations named exist."""
    operations = _operations()
    allowed: dict[str, set[str]] = {}
    for entry in _fuzz_project()["operations"]:
        for name in _ids(entry):
            assert name in operations, name
            statuses = entry.get("checks", {}).get("positive_data_acceptance", {}).get("expected-statuses")
            if statuses is None:
                continue
            assert statuses[: len(FUZZ_DEFAULT_ACCEPTED)] == FUZZ_DEFAULT_ACCEPTED, name
            extra = set(statuses[len(FUZZ_DEFAULT_ACCEPTED) :])
            allowed[name] = extra
            for status in extra:
                assert list(_response(operations[name], status)["content"]) == ["application/problem+json"]
    assert allowed == {
        "listUserTasks": {"400"},
        "listUserTaskChanges": {"410"},
        **{name: {"422"} for name in WRITE_OPERATIONS},
        "reserveUserTask": {"422", "400"},
        "reserveUserTasks": {"422", "400"},
    }
    assert "cursor" in _response(operations["listUserTasks"], "400")["description"]
    assert "/ownerId" in COMPONENTS["schemas"]["OwnerId"]["description"]
    for name in WRITE_OPERATIONS:
        assert "idempotency-key-reused" in _response(operations[name], "422")["description"], name


def test_the_idempotency_key_has_no_example() -> None:
    """One value sent with different bodies is a reused key (422): the document offers none for every request."""
    key = COMPONENTS["parameters"]["IdempotencyKey"]
    assert not {"example", "examples"} & set(key)
    assert not {"example", "examples"} & set(key["schema"])
    for name in WRITE_OPERATIONS:
        parameters = _operations()[name]["parameters"]
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in parameters, name


def test_every_operation_declares_the_problems_it_can_answer() -> None:
    """The statuses the gateway can answer on each operation, each an application/problem+json (405, 404 for an
    unknown path and 500 are ``default``)."""
    every = {"400", "401", "403", "406", "413", "502", "503", "504", "default"}
    expected = {
        "listUserTasks": every,
        "listUserTaskChanges": every | {"410"},
        "streamUserTaskEvents": every | {"429"},
        "getUserTask": every | {"404"},
        "reserveUserTask": every | {"404", "409", "415", "422"},
        "cancelUserTaskReservation": every | {"404", "409", "422"},
        "finishUserTask": every | {"404", "409", "415", "422"},
        "reserveUserTasks": every | {"415", "422"},
        "cancelUserTaskReservations": every | {"415", "422"},
        "finishUserTasks": every | {"415", "422"},
    }
    operations = _operations()
    assert set(operations) == set(expected)
    for name, operation in operations.items():
        problems = {status for status in operation["responses"] if not status.startswith("2")}
        assert problems == expected[name], name
        for status in problems:
            assert list(_response(operation, status)["content"]) == ["application/problem+json"], (name, status)
