"""The JavaScript sandbox: ProcessCube conditions and scripts, and what a hostile script cannot do."""

from __future__ import annotations

from typing import Any

import pytest

from embedded_engine.js import JsEvaluationError, evaluate_condition, evaluate_expression, run_script

TOKEN: dict[str, Any] = {
    "current": {"confirmed": "true", "genehmigen": False, "amount": 1500},
    "history": {"StartEvent_1": {"amount": 1500}},
}


def test_condition_compares_token_current_like_processcube_models() -> None:
    assert evaluate_condition('token.current.confirmed === "true"', TOKEN) is True
    assert evaluate_condition('token.current.confirmed === "false"', TOKEN) is False


def test_condition_result_is_javascript_truthiness() -> None:
    assert evaluate_condition("token.current.genehmigen", TOKEN) is False
    assert evaluate_condition("!token.current.genehmigen", TOKEN) is True
    assert evaluate_condition("token.current.amount", TOKEN) is True
    assert evaluate_condition("''", TOKEN) is False


def test_condition_may_be_a_function_body_with_return() -> None:
    assert evaluate_condition("const a = token.current.amount;\nreturn a > 1000;", TOKEN) is True


def test_condition_with_trailing_semicolon_is_still_an_expression() -> None:
    assert evaluate_condition("token.current.amount > 1000;", TOKEN) is True


def test_condition_reads_token_history() -> None:
    assert evaluate_condition("token.history.StartEvent_1.amount === 1500", TOKEN) is True


def test_empty_condition_is_no_condition_and_true() -> None:
    assert evaluate_condition("", TOKEN) is True
    assert evaluate_condition("  \n ", TOKEN) is True
    assert evaluate_condition(None, TOKEN) is True


def test_expression_returns_json_value() -> None:
    assert evaluate_expression("({total: token.current.amount * 2, tags: ['a']})", TOKEN) == {
        "total": 3000,
        "tags": ["a"],
    }
    assert evaluate_expression("undefined", TOKEN) is None


def test_script_return_value_is_the_result() -> None:
    assert run_script("return {doubled: token.current.amount * 2};", TOKEN) == {"doubled": 3000}


def test_script_without_return_yields_none() -> None:
    assert run_script("const x = 1;", TOKEN) is None


def test_script_that_throws_raises_evaluation_error_with_message() -> None:
    with pytest.raises(JsEvaluationError, match="boom"):
        run_script("throw new Error('boom');", TOKEN)


def test_reading_a_missing_property_chain_raises_type_error() -> None:
    with pytest.raises(JsEvaluationError, match="TypeError"):
        evaluate_condition("token.current.missing.deeper", TOKEN)


def test_syntax_error_raises_evaluation_error() -> None:
    with pytest.raises(JsEvaluationError, match="SyntaxError"):
        evaluate_condition("token.current.", TOKEN)


def test_infinite_loop_times_out() -> None:
    with pytest.raises(JsEvaluationError, match="timed out"):
        evaluate_condition("while(true){}", TOKEN, timeout=0.1)
    assert evaluate_condition("true", TOKEN) is True


def test_huge_allocation_is_stopped_and_later_evaluations_work() -> None:
    with pytest.raises(JsEvaluationError):
        run_script("const a = []; while (true) { a.push(new Array(100000).fill(1)); }", TOKEN, timeout=5)
    assert evaluate_condition("token.current.amount === 1500", TOKEN) is True


def test_constructor_escape_cannot_reach_the_host() -> None:
    with pytest.raises(JsEvaluationError, match="ReferenceError"):
        evaluate_expression('this.constructor.constructor("return process")()', TOKEN)
    with pytest.raises(JsEvaluationError, match="ReferenceError"):
        evaluate_expression('(() => {}).constructor("return require")()("os")', TOKEN)
    assert evaluate_expression("typeof setTimeout === 'function' ? 'x' : typeof Atomics", TOKEN) in (
        "x",
        "undefined",
    )


def test_python_objects_are_not_reachable_from_javascript() -> None:
    names = evaluate_expression("Object.getOwnPropertyNames(globalThis)", TOKEN)
    assert isinstance(names, list)
    assert not [n for n in names if "py" in n.lower() or n in ("process", "require", "os")]


def test_mutating_object_prototype_does_not_affect_the_next_evaluation() -> None:
    evaluate_condition("(Object.prototype.polluted = 1, Array.prototype.includes = null, true)", TOKEN)
    assert evaluate_condition("({}).polluted === undefined && typeof [].includes === 'function'", TOKEN)


def test_defining_on_frozen_intrinsics_throws() -> None:
    with pytest.raises(JsEvaluationError, match="TypeError"):
        run_script("'use strict'; Object.prototype.x = 1;", TOKEN)


def test_globals_written_by_one_script_are_invisible_to_the_next() -> None:
    run_script("leaked = 42; globalThis.other = 1; return 1;", TOKEN)
    assert evaluate_expression("typeof leaked + ',' + typeof other", TOKEN) == "undefined,undefined"


def test_replacing_json_parse_does_not_break_token_passing() -> None:
    evaluate_condition("(JSON.parse = () => 1, true)", TOKEN)
    assert evaluate_expression("token.current.amount", TOKEN) == 1500


def test_queued_microtask_cannot_hang_a_later_evaluation() -> None:
    with pytest.raises(JsEvaluationError, match="timed out"):
        run_script("Promise.resolve().then(() => { while (true) {} }); return 1;", TOKEN, timeout=0.1)
    assert evaluate_condition("true", TOKEN) is True


def test_token_must_be_json() -> None:
    with pytest.raises(JsEvaluationError, match="JSON"):
        evaluate_condition("true", {"current": object(), "history": {}})
