"""Requests too long for a URL: a typed ConfigurationError before anything is sent, never a raw httpx.InvalidURL;
and long id lists, which the client splits itself, stay below the URL limits that engines have."""

from __future__ import annotations

import httpx
import pytest

from gateway.engine import ConfigurationError, ProcessCubeException, map_engine_errors
from gateway.engine.client import MAX_URL_LENGTH

from ._helpers import Recorder, flow_node_instance, mock_client, task_list


async def test_a_filter_too_long_for_a_url_is_a_configuration_error_and_nothing_is_sent() -> None:
    recorder = Recorder(lambda r: task_list())
    async with mock_client(recorder) as client:
        with pytest.raises(ConfigurationError, match="URL would be"):
            await client.get_user_tasks(process_model_id=["M" * 5_000] * 20)
        with pytest.raises(ConfigurationError):
            await client.get_user_tasks(flow_node_lane="x" * MAX_URL_LENGTH)
        assert recorder.requests == []


async def test_a_task_id_too_long_for_a_url_is_a_configuration_error() -> None:
    recorder = Recorder(lambda r: httpx.Response(204))
    async with mock_client(recorder) as client:
        with pytest.raises(ProcessCubeException):
            await client.reserve_user_task("x" * 70_000, "someone")
    assert recorder.requests == []


def test_invalid_url_maps_to_a_typed_error() -> None:
    with pytest.raises(ConfigurationError), map_engine_errors(what="query"):
        raise httpx.InvalidURL("URL too long")


async def test_long_id_lists_are_split_into_urls_below_8_kib() -> None:
    recorder = Recorder(lambda r: task_list(flow_node_instance("a")))
    async with mock_client(recorder) as client:
        await client.get_user_tasks_by_ids([f"{index:04d}-" + "i" * 190 for index in range(3_000)])
    assert len(recorder.requests) > 1
    assert all(len(str(request.url)) < 8 * 1024 for request in recorder.requests)
