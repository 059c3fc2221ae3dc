"""What an instance waits for besides people and workers, at the runner: messages, signals, timers.

The HTTP side (triggers, the alarm clock, restarts) is in ``tests/embedded_engine/test_waiting_events.py``.
"""

from __future__ import annotations

from embedded_engine.bpmn import ProcessRunner, parse_definitions
from tests.embedded_engine.test_waiting_events import catch_message, chain, message, studio_model, timer


def states(runner: ProcessRunner) -> dict[str, str]:
    return {node.flow_node_id: node.state for node in runner.snapshot().flow_node_instances}


def restored(runner: ProcessRunner, xml: str, process_id: str) -> ProcessRunner:
    """The same instance, stored and loaded again, as the engine does between requests."""
    return ProcessRunner.load(parse_definitions(xml), process_id, runner.serialize())


EVENT_GATEWAY = studio_model(
    "Race",
    '<bpmn:startEvent id="Start" /><bpmn:eventBasedGateway id="Race" />'
    + catch_message("Paid")
    + f'<bpmn:intermediateCatchEvent id="Timeout">{timer("timeDuration", "PT1H")}</bpmn:intermediateCatchEvent>'
    + '<bpmn:endEvent id="PaidEnd" /><bpmn:endEvent id="TimeoutEnd" />'
    + chain("Start", "Race", "Paid", "PaidEnd")
    + chain("Race", "Timeout", "TimeoutEnd"),
    message("Paid"),
)


def test_an_event_based_gateway_waits_for_each_of_its_events_and_the_first_wins() -> None:
    runner = ProcessRunner.start(parse_definitions(EVENT_GATEWAY), "Race", initial_token={})
    waits = {(wait.kind, wait.name) for wait in runner.waits()}
    assert waits == {("message", "Paid"), ("timer", None)}
    assert all(wait.flow_node_id == "Race" for wait in runner.waits())

    runner = restored(runner, EVENT_GATEWAY, "Race")
    assert runner.catch("message", "Paid", {"amount": 3})

    assert runner.snapshot().state == "finished"
    assert runner.snapshot().end_event_id == "PaidEnd"
    assert runner.snapshot().end_token == {"amount": 3}
    assert runner.waits() == ()


def test_firing_the_timer_of_an_event_based_gateway_takes_its_branch() -> None:
    runner = ProcessRunner.start(parse_definitions(EVENT_GATEWAY), "Race", initial_token={"k": 1})
    (timeout,) = [wait for wait in runner.waits() if wait.kind == "timer"]

    runner.fire_timer(timeout.flow_node_instance_id)

    assert runner.snapshot().end_event_id == "TimeoutEnd"
    assert not runner.catch("message", "Paid")


def test_a_receive_task_waits_for_its_message() -> None:
    xml = studio_model(
        "Receiver",
        '<bpmn:startEvent id="S" /><bpmn:receiveTask id="Receive" messageRef="Message_Paid" /><bpmn:endEvent id="E" />'
        + chain("S", "Receive", "E"),
        message("Delivery"),
    )
    runner = ProcessRunner.start(parse_definitions(xml), "Receiver", initial_token={})
    assert states(runner)["Receive"] == "suspended"
    assert not runner.catch("message", "SomethingElse", {})
    assert not runner.catch("signal", "Delivery", {})

    assert runner.catch("message", "Delivery", {"parcel": 1})

    assert runner.snapshot().end_token == {"parcel": 1}


def test_a_non_interrupting_timer_cycle_leaves_the_task_waiting_and_runs_its_path_each_time() -> None:
    xml = studio_model(
        "Reminders",
        '<bpmn:startEvent id="S" /><bpmn:userTask id="Work" />'
        f'<bpmn:boundaryEvent id="Remind" cancelActivity="false" attachedToRef="Work">{timer("timeCycle", "R2/PT1H")}'
        '</bpmn:boundaryEvent><bpmn:manualTask id="Nudge" /><bpmn:endEvent id="Done" /><bpmn:endEvent id="Nudged" />'
        + chain("S", "Work", "Done")
        + chain("Remind", "Nudge", "Nudged"),
    )
    runner = ProcessRunner.start(parse_definitions(xml), "Reminders", initial_token={})
    (reminder,) = runner.waits()
    assert reminder.kind == "timer"
    assert reminder.due_at is not None

    runner.fire_timer(reminder.flow_node_instance_id)

    assert states(runner)["Work"] == "suspended"
    assert states(runner)["Nudge"] == "suspended"


def test_an_end_event_that_throws_a_message_hands_it_to_the_engine_with_the_token() -> None:
    xml = studio_model(
        "Announcer",
        '<bpmn:startEvent id="S" /><bpmn:endEvent id="Announce">'
        '<bpmn:messageEventDefinition id="Def" messageRef="Message_Paid" /></bpmn:endEvent>' + chain("S", "Announce"),
        message("Announced"),
    )
    runner = ProcessRunner.start(parse_definitions(xml), "Announcer", initial_token={"order": 9})

    assert runner.snapshot().state == "finished"
    (event,) = runner.outbound_events()
    assert (event.kind, event.name, event.payload) == ("message", "Announced", {"order": 9})
    assert runner.outbound_events() == ()  # handed over once


def test_a_timer_cycle_without_a_pause_fails_the_instance_instead_of_firing_without_end() -> None:
    xml = studio_model(
        "Storm",
        '<bpmn:startEvent id="S" /><bpmn:userTask id="Work" />'
        f'<bpmn:boundaryEvent id="Nag" cancelActivity="false" attachedToRef="Work">{timer("timeCycle", "R/PT0S")}'
        '</bpmn:boundaryEvent><bpmn:endEvent id="Done" /><bpmn:endEvent id="Nagged" />'
        + chain("S", "Work", "Done")
        + chain("Nag", "Nagged"),
    )
    snapshot = ProcessRunner.start(parse_definitions(xml), "Storm", initial_token={}).snapshot()

    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert "Nag" in snapshot.error["message"]
