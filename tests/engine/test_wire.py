from __future__ import annotations

from typing import Any

import pytest

from gateway.engine import ProtocolError, TaskPage
from gateway.engine.wire import (
    authority_from_wire,
    chunk_ids,
    encode_query,
    event_from_wire,
    task_from_wire,
    task_page_from_wire,
    user_task_query,
)

from ._helpers import flow_node_instance


def test_task_carries_the_seed_keys() -> None:
    task = task_from_wire(flow_node_instance("fni-7", actualOwnerId="user@example.com"))
    assert task["userTaskInstanceId"] == "fni-7"
    assert task["flowNodeId"] == "Activity_Approve"
    assert task["processInstanceId"] == "pi-1"
    assert task["processModelId"] == "ApprovalProcess"
    assert task["token"] == {"amount": 1500, "customerType": "vip"}
    assert task["reservedFor"] == "user@example.com"


def test_task_keeps_every_engine_field_and_lifts_form_fields() -> None:
    wire = flow_node_instance()
    task = task_from_wire(wire)
    for key, value in wire.items():
        assert task[key] == value
    assert task["formFields"] == wire["userTaskConfig"]["formFields"]
    assert task["flowNodeName"] == "Approve order"
    assert task["flowNodeLane"] == "Managers"
    assert task["correlationId"] == "corr-1"
    assert task["state"] == "suspended"
    assert task["startedAt"] == "2024-01-15T10:30:00.000Z"


def test_unreserved_task_has_reserved_for_none_and_missing_token_is_empty() -> None:
    wire = flow_node_instance()
    del wire["startToken"]
    del wire["userTaskConfig"]
    task = task_from_wire(wire)
    assert task["reservedFor"] is None
    assert task["token"] == {}
    assert task["formFields"] == []


@pytest.mark.parametrize("field", ["flowNodeInstanceId", "flowNodeId", "processInstanceId", "processModelId", "state"])
def test_task_missing_a_required_field_is_a_protocol_error(field: str) -> None:
    wire = flow_node_instance()
    del wire[field]
    with pytest.raises(ProtocolError, match=field):
        task_from_wire(wire)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("flowNodeInstanceId", 17),
        ("flowNodeName", ["x"]),
        ("actualOwnerId", 1),
        ("userTaskConfig", "nope"),
        ("userTaskConfig", {"formFields": "nope"}),
        ("userTaskConfig", {"formFields": [1, 2]}),
    ],
)
def test_task_field_of_the_wrong_type_is_a_protocol_error(field: str, value: Any) -> None:
    with pytest.raises(ProtocolError):
        task_from_wire(flow_node_instance(**{field: value}))


@pytest.mark.parametrize("body", [None, [], "x", 1, {"flowNodeInstances": {}}, {"items": []}])
def test_task_list_of_the_wrong_shape_is_a_protocol_error(body: Any) -> None:
    with pytest.raises(ProtocolError):
        task_page_from_wire(body)


def test_task_list_with_a_bad_count_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        task_page_from_wire({"flowNodeInstances": [], "totalCount": "3"})


def test_task_page_has_items_and_total_count() -> None:
    page = task_page_from_wire(
        {"flowNodeInstances": [flow_node_instance("a"), flow_node_instance("b")], "totalCount": 7},
        offset=2,
        limit=2,
    )
    assert isinstance(page, TaskPage)
    assert [t["userTaskInstanceId"] for t in page.items] == ["a", "b"]
    assert page.total_count == 7
    assert page.has_more


def test_query_matches_the_official_clients_wire_format() -> None:
    params = user_task_query(
        {"processInstanceId": "pi-1", "state": "suspended", "flowNodeId": ["a", "b"]},
        sort_by="createdAt",
        sort_dir="DESC",
        offset=5,
        limit=10,
    )
    assert encode_query(params) == (
        "processInstanceId=pi-1&state=suspended&flowNodeId=a,b&flowNodeType=bpmn%3AUserTask"
        "&sortSettings=%7B%22sortBy%22%3A%22createdAt%22%2C%22sortDir%22%3A%22DESC%22%7D"
        "&offset=5&limit=10&includeCount=true"
    )


def test_each_listed_value_is_encoded_on_its_own() -> None:
    query = encode_query(user_task_query({"flowNodeInstanceId": ["a,b", "c d", "é"]}))
    assert query.startswith("flowNodeInstanceId=a%2Cb,c%20d,%C3%A9&")


def test_none_filters_are_left_out() -> None:
    assert encode_query(user_task_query({"state": None, "processModelId": None})) == (
        "flowNodeType=bpmn%3AUserTask&includeCount=true"
    )


def test_bad_sort_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="sort_dir"):
        user_task_query({}, sort_by="createdAt", sort_dir="UP")  # type: ignore[arg-type]


def test_long_id_lists_are_chunked_below_url_limits() -> None:
    ids = [f"{i:036d}" for i in range(500)]
    chunks = chunk_ids(ids)
    assert [i for chunk in chunks for i in chunk] == ids
    assert len(chunks) > 1
    assert all(len(",".join(chunk)) <= 4000 for chunk in chunks)


def test_authority_is_a_json_string_url() -> None:
    assert authority_from_wire("http://auth.test/") == "http://auth.test"
    with pytest.raises(ProtocolError):
        authority_from_wire({"url": "http://auth.test"})


def test_event_message_becomes_a_typed_event() -> None:
    event = event_from_wire(
        "user_task_finished",
        {
            "flowNodeInstanceId": "fni-1",
            "flowNodeId": "Activity_Approve",
            "processInstanceId": "pi-1",
            "processModelId": "ApprovalProcess",
            "correlationId": "c",
            "currentToken": {"amount": 1},
            "userTaskResult": {"approved": True},
        },
    )
    assert event.name == "user_task_finished"
    assert event.flow_node_instance_id == "fni-1"
    assert event.process_instance_id == "pi-1"
    assert event.user_task_result == {"approved": True}
    assert event.raw["correlationId"] == "c"
    with pytest.raises(ProtocolError):
        event_from_wire("user_task_waiting", "garbage")
