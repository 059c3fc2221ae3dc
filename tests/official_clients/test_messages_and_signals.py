"""(e) Messages and signals through the official clients: intermediate catch events continue when a client
triggers them, and a message starts an instance at a message start event."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, run_driver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ts(engine: EngineServer) -> Steps:
    return run_driver("ts_messages_signals.cjs", engine)


@pytest.fixture(scope="module")
def py(engine: EngineServer) -> Steps:
    return run_driver("py_messages_signals.py", engine)


@needs_node_client
def test_ts_message_continues_the_intermediate_catch_event(ts: Steps) -> None:
    waiting = ts["waiting at the message"]
    assert waiting["flowNodeType"] == "bpmn:IntermediateCatchEvent"
    ts["events.triggerMessageEvent"]
    assert ts["waiting at the signal"]["flowNodeType"] == "bpmn:IntermediateCatchEvent"


@needs_node_client
def test_ts_signal_continues_the_intermediate_catch_event(ts: Steps) -> None:
    ts["events.triggerSignalEvent"]
    assert ts["instance outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}


@needs_node_client
def test_ts_message_starts_an_instance(ts: Steps) -> None:
    ts["events.triggerMessageEvent (start event)"]
    instances = ts["instance started by the message"]
    assert [instance["state"] for instance in instances] == ["finished"]


def test_python_message_and_signal_continue_the_instance(py: Steps) -> None:
    py["waiting at the message"]
    py["EventClient.trigger_message"]
    py["waiting at the signal"]
    py["Client.trigger_signal"]
    assert py["instance"]["state"] == "finished"


def test_python_message_starts_an_instance(py: Steps) -> None:
    py["Client.trigger_message (start event)"]
    assert "finished" in py["instance started by the message"]
