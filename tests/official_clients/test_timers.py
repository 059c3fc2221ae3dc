"""(f) Timers, observed through the official TypeScript client: an intermediate timer catch event and an
interrupting boundary timer on a user task both run their instance to the end by themselves."""

from __future__ import annotations

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, run_driver

pytestmark = [pytest.mark.integration, needs_node_client]


@pytest.fixture(scope="module")
def timers(engine: EngineServer) -> Steps:
    return run_driver("ts_timers.cjs", engine)


def test_intermediate_timer_catch_event_runs_to_the_end(timers: Steps) -> None:
    assert timers["start timer"]["processInstanceId"]
    assert timers["timer outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}


def test_boundary_timer_interrupts_the_user_task(timers: Steps) -> None:
    assert timers["user task waiting"] == {"state": "suspended", "flowNodeId": "Rueckmeldung_geben"}
    assert timers["boundary timer outcome"] == {"state": "finished", "endEvents": ["EndEvent_Verfallen"]}
    assert timers["user task after the boundary timer"] in (["terminated"], ["canceled"])
