"""External service tasks in the runner: payloads, errors caught by boundary events, errors that fail the instance."""

from __future__ import annotations

import pytest

from embedded_engine.bpmn import ProcessRunner, parse_definitions
from embedded_engine.bpmn.external import external_task_model
from tests.embedded_engine.bpmn._helpers import SHARED_PROCESSES, flow, model, needs_real_models, node, only_suspended

ERRORS = '<bpmn:error id="Err_A" name="A" errorCode="E_A" /><bpmn:error id="Err_B" name="B" errorCode="E_B" />'


def external_model(properties: str = "", boundaries: str = "", extra: str = "") -> str:
    props = f"<bpmn:extensionElements><camunda:properties>{properties}</camunda:properties></bpmn:extensionElements>"
    body = (
        '<bpmn:startEvent id="start" />'
        f'<bpmn:serviceTask id="work" name="Work" camunda:type="external" camunda:topic="t">{props}'
        "</bpmn:serviceTask>"
        '<bpmn:endEvent id="done" />' + flow("f0", "start", "work") + flow("f1", "work", "done") + boundaries + extra
    )
    return model(body).replace("<bpmn:process ", ERRORS + "<bpmn:process ", 1)


def boundary(event_id: str, error_ref: str | None) -> str:
    ref = f' errorRef="{error_ref}"' if error_ref else ""
    return (
        f'<bpmn:boundaryEvent id="{event_id}" attachedToRef="work"><bpmn:errorEventDefinition{ref} />'
        f'</bpmn:boundaryEvent><bpmn:endEvent id="end_{event_id}" />'
        + flow(f"f_{event_id}", event_id, f"end_{event_id}")
    )


def started(xml: str, token: object = None) -> tuple[ProcessRunner, str]:
    runner = ProcessRunner.start(parse_definitions(xml), "TestProcess", initial_token=token or {"n": 1})
    return runner, only_suspended(runner, "work").flow_node_instance_id


def reloaded(runner: ProcessRunner, xml: str) -> ProcessRunner:
    return ProcessRunner.load(parse_definitions(xml), "TestProcess", runner.serialize())


def test_the_payload_is_token_current_and_survives_a_reload() -> None:
    xml = external_model()
    runner, task_id = started(xml, {"n": 7})
    found = runner.external_task(task_id)
    assert found is not None
    definition, payload = found
    assert (definition.topic, definition.is_single_try, payload) == ("t", False, {"n": 7})
    again = reloaded(runner, xml).external_task(task_id)
    assert again is not None
    assert again[1] == {"n": 7}


def test_the_payload_property_is_an_expression_or_a_function_body() -> None:
    runner, task_id = started(
        external_model('<camunda:property name="payload" value="{ double: token.current.n * 2 }" />')
    )
    assert (runner.external_task(task_id) or (None, None))[1] == {"double": 2}
    runner, task_id = started(
        external_model('<camunda:property name="payload" value="const x = token.current.n + 1; return [x];" />')
    )
    assert (runner.external_task(task_id) or (None, None))[1] == [2]


def test_a_failing_payload_expression_fails_the_instance() -> None:
    runner = ProcessRunner.start(
        parse_definitions(external_model('<camunda:property name="payload" value="token.nothing.here" />')),
        "TestProcess",
        initial_token={},
    )
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert snapshot.error["flowNodeId"] == "work"
    assert "Payload of external task" in snapshot.error["message"]
    assert node(snapshot, "work").state == "error"


def test_a_matching_error_code_beats_a_catch_all_boundary_event() -> None:
    xml = external_model(boundaries=boundary("any", None) + boundary("b", "Err_B"))
    runner, task_id = started(xml)
    runner = reloaded(runner, xml)
    assert runner.error_external_task(task_id, "E_B", "b happened", {"why": 1}) is True
    snapshot = runner.snapshot()
    assert snapshot.state == "finished"
    assert snapshot.end_event_id == "end_b"
    assert snapshot.end_token == {"errorCode": "E_B", "errorMessage": "b happened", "errorDetails": {"why": 1}}
    assert node(snapshot, "work").state == "error"


def test_a_catch_all_boundary_event_catches_any_code() -> None:
    xml = external_model(boundaries=boundary("any", None) + boundary("b", "Err_B"))
    runner, task_id = started(xml)
    assert runner.error_external_task(task_id, "SomethingElse") is True
    assert runner.snapshot().end_event_id == "end_any"


def test_an_error_nothing_catches_fails_the_instance() -> None:
    xml = external_model(boundaries=boundary("b", "Err_B"))
    runner, task_id = started(xml)
    assert runner.error_external_task(task_id, "E_A", "a happened", "details") is False
    snapshot = runner.snapshot()
    assert snapshot.state == "error"
    assert snapshot.error is not None
    assert snapshot.error["message"] == "a happened"
    assert snapshot.error["errorCode"] == "E_A"
    assert snapshot.error["errorDetails"] == "details"
    assert node(snapshot, "work").state == "error"
    with pytest.raises(KeyError):
        runner.error_external_task(task_id, "E_A")


def test_only_a_waiting_external_task_takes_an_error() -> None:
    runner, task_id = started(external_model())
    with pytest.raises(KeyError):
        runner.error_external_task("not-a-uuid", "E")
    runner.finish_external_task(task_id, {"ok": True})
    assert runner.snapshot().end_token == {"ok": True}
    with pytest.raises(KeyError):
        runner.error_external_task(task_id, "E")
    assert runner.external_task(task_id) is None


def test_single_try_is_read_from_the_engine_property() -> None:
    xml = external_model('<camunda:property name="engine.isSingleTry" value="true" />')
    assert external_task_model(parse_definitions(xml)).tasks["work"].is_single_try is True


@needs_real_models
def test_the_studio_invoice_model_hands_the_data_object_to_its_worker() -> None:
    definitions = parse_definitions((SHARED_PROCESSES / "2_Rechnungserstellung_soll.bpmn").read_text(encoding="utf-8"))
    external = external_task_model(definitions)
    assert {t.topic for t in external.tasks.values()} == {"Rechnung erstellen", "Rechnung verschicken"}
    assert external.data_object_writers["rechnungsdaten"] == ("rechnung_erfassen",)
    process_id = next(m.process_model_id for m in definitions.process_models if m.is_executable)
    runner = ProcessRunner.start(definitions, process_id, initial_token={})
    invoice = {"empfaenger": "ACME", "betrag": 120}
    runner.finish_user_task(only_suspended(runner, "rechnung_erfassen").flow_node_instance_id, invoice)
    work = only_suspended(runner, "Activity_1q5rlr7")
    assert runner.external_task(work.flow_node_instance_id) is not None
    assert (runner.external_task(work.flow_node_instance_id) or (None, None))[1] == invoice
