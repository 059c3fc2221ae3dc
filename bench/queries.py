"""The requests the benchmarks send: GraphQL documents, REST and engine URLs, and what a right answer looks like."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from .servers import API, ENGINE_HEADERS

#: The fields a task list shows (the same selection as tests/gql/test_graphql.py).
TASK_FIELDS = """
  id flowNodeId name lane state processModelId processInstanceId correlationId token reservedFor
  formFields { id label type defaultValue enumValues { id name } }
  startedAt finishedAt finishedBy
"""

LIST = (
    "query List($filter: UserTaskFilter, $first: Int) {\n"
    "  userTasks(filter: $filter, first: $first) {\n"
    "    totalCount pageInfo { hasNextPage endCursor }\n"
    "    nodes {" + TASK_FIELDS + "}\n"
    "  }\n"
    "}\n"
)

FINISH_MANY = "mutation($items: [FinishUserTaskInput!]!) { finishUserTasks(items: $items) { __typename } }"

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def graphql_request(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """A load-generator request: POST of a GraphQL document."""
    body = json.dumps({"query": query, "variables": variables or {}})
    return {"method": "POST", "url": url, "headers": JSON_HEADERS, "body": body}


def list_request(graphql_url: str, first: int, task_filter: dict[str, Any] | None = None) -> dict[str, Any]:
    variables: dict[str, Any] = {"first": first}
    if task_filter is not None:
        variables["filter"] = task_filter
    return graphql_request(graphql_url, LIST, variables)


def list_check(items: int, total: int | None = None) -> dict[str, Any]:
    """A right page: ``items`` nodes, none null, and (if given) the exact ``totalCount``."""
    asserts: list[dict[str, Any]] = [{"path": ["data", "userTasks", "nodes"], "length": items, "non_null": True}]
    if total is not None:
        asserts.append({"path": ["data", "userTasks", "totalCount"], "equals": total})
    return {"asserts": asserts}


def engine_page_request(engine_url: str, limit: int, **filters: str) -> dict[str, Any]:
    """GET /flow_node_instances for one page of waiting user tasks, as the gateway asks for it."""
    params = {
        "state": "suspended",
        **filters,
        "flowNodeType": "bpmn:UserTask",
        "sortSettings": json.dumps({"sortBy": "createdAt", "sortDir": "ASC"}, separators=(",", ":")),
        "limit": str(limit),
        "includeCount": "true",
    }
    url = f"{engine_url}{API}/flow_node_instances?{urlencode(params)}"
    return {"method": "GET", "url": url, "headers": {**ENGINE_HEADERS, "Accept": "application/json"}}


def engine_page_check(items: int, total: int | None = None) -> dict[str, Any]:
    asserts: list[dict[str, Any]] = [{"path": ["flowNodeInstances"], "length": items, "non_null": True}]
    if total is not None:
        asserts.append({"path": ["totalCount"], "equals": total})
    return {"asserts": asserts}


def rest_page_request(gateway_url: str, limit: int) -> dict[str, Any]:
    return {
        "method": "GET",
        "url": f"{gateway_url}/api/v1/user-tasks?limit={limit}",
        "headers": {"Accept": "application/json"},
    }


def rest_page_check(items: int, total: int | None = None) -> dict[str, Any]:
    asserts: list[dict[str, Any]] = [{"path": ["items"], "length": items, "non_null": True}]
    if total is not None:
        asserts.append({"path": ["totalCount"], "equals": total})
    return {"asserts": asserts}


def lookups_query(task_ids: list[str]) -> str:
    """One document with a ``userTask(id)`` field per id (aliases t0, t1, ...)."""
    fields = " ".join(
        f't{index}: userTask(id: "{task_id}") {{ id name state }}' for index, task_id in enumerate(task_ids)
    )
    return "{ " + fields + " }"
