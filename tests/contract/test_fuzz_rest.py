"""A consumer's fuzzer against the REST face: the PLAIN command, no hooks, no project code.

``schemathesis run openapi/openapi.yaml --url <gateway> --checks all`` (plus a seed and a budget) against a real
gateway in front of its embedded engine with the demo data, run from the repository so that schemathesis reads
``schemathesis.toml``: what the document cannot say in JSON Schema (a cursor is valid only when the gateway issued
it; one Idempotency-Key names one request; the event stream never ends) is said there, per operation, and each
status it allows is a response the operation declares (tests/rest/test_contract.py holds the two together).

The report then shows that the statuses the configuration allows for schema-valid requests were answered for the
documented reason only: a 400 of the list is a cursor refusal, a 410 of the change feed is ``changes-expired``, a
422 of a write is ``idempotency-key-reused`` (or, finishing one task, ``invalid-task-result``), a 400 of a
reservation names ``/ownerId`` (printable Unicode, which the schema's pattern says only for ASCII).

``make test`` runs ``FAST_MAX_EXAMPLES`` per operation; ``make test-slow`` (``--run-slow``) ``SLOW_MAX_EXAMPLES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.fuzz import SEED, Run, run_schemathesis
from tests.report import AttackReport
from tests.servers import GatewayServer, gateway_with_embedded_engine

FAST_MAX_EXAMPLES = 10
SLOW_MAX_EXAMPLES = 200

WRITES = {
    ("PUT", "/api/v1/user-tasks/{id}/reservation"),
    ("DELETE", "/api/v1/user-tasks/{id}/reservation"),
    ("POST", "/api/v1/user-tasks/{id}/finish"),
    ("POST", "/api/v1/user-tasks/batch/reserve"),
    ("POST", "/api/v1/user-tasks/batch/cancel-reservation"),
    ("POST", "/api/v1/user-tasks/batch/finish"),
}

RESERVATIONS = {("PUT", "/api/v1/user-tasks/{id}/reservation"), ("POST", "/api/v1/user-tasks/batch/reserve")}


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    """A gateway as `make run` starts it: its embedded engine with the demo data, in a fresh directory."""
    gateway = gateway_with_embedded_engine(tmp_path / "gateway", demo=True).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def fuzz(gateway: GatewayServer, report_dir: Path, max_examples: int) -> Run:
    run = run_schemathesis(
        [
            "openapi/openapi.yaml",
            "--url",
            gateway.url,
            "--checks",
            "all",
            "--seed",
            str(SEED),
            "--max-examples",
            str(max_examples),
        ],
        report_dir,
    )
    assert run.returncode == 0, run.failure_text()
    return run


def _reason(run: Run) -> list[str]:
    """Schema-valid requests refused with a status the configuration allows, for another than the documented reason."""
    wrong: list[str] = []
    for exchange in run.exchanges():
        if exchange.mode != "positive" or exchange.status not in (400, 410, 422):
            continue
        operation = (exchange.method, exchange.path)
        problem = exchange.json()
        code, detail = problem.get("code"), str(problem.get("detail", ""))
        if operation == ("GET", "/api/v1/user-tasks") and exchange.status == 400:
            fine = code == "BAD_REQUEST" and "cursor" in detail
        elif operation == ("GET", "/api/v1/user-tasks/changes") and exchange.status == 410:
            fine = code == "CHANGES_EXPIRED"
        elif operation in RESERVATIONS and exchange.status == 400:
            fine = code == "BAD_REQUEST" and [item["field"] for item in problem.get("problems", [])] == ["/ownerId"]
        elif operation in WRITES and exchange.status == 422:
            reasons = {"IDEMPOTENCY_KEY_REUSED"}
            if operation == ("POST", "/api/v1/user-tasks/{id}/finish"):
                reasons.add("INVALID_TASK_RESULT")
            fine = code in reasons
        else:
            continue  # not an allowance of schemathesis.toml (the default checks judged it)
        if not fine:
            wrong.append(f"{exchange.method} {exchange.path} [{exchange.phase}] {exchange.status}: {detail}")
    return wrong


def _assert_fuzzed(run: Run, report: AttackReport) -> None:
    report.add("inputs tried", len(list(run.exchanges())))
    report.add("crashes", sum(exchange.status >= 500 for exchange in run.exchanges()))
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in run.stdout, phase
    assert "9 selected / 10 total" in run.stdout  # the event stream is left out by the configuration, nothing else
    assert len(run.check_kinds()) >= 10  # --checks all: every kind of check judged some answer
    assert _reason(run) == []
    exchanges = list(run.exchanges())
    assert exchanges
    for exchange in exchanges:
        if exchange.status >= 400 and exchange.path.startswith("/api/v1"):
            assert exchange.header("content-type") == "application/problem+json", exchange


@pytest.mark.timeout(600)  # about 35 s alone; the shared machine's load can make it several times that
def test_a_plain_schemathesis_run_finds_nothing(
    demo_gateway: GatewayServer, tmp_path: Path, attack_report: AttackReport
) -> None:
    _assert_fuzzed(fuzz(demo_gateway, tmp_path / "report", FAST_MAX_EXAMPLES), attack_report)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_plain_schemathesis_run_finds_nothing_in_a_long_run(
    demo_gateway: GatewayServer, tmp_path: Path, attack_report: AttackReport
) -> None:
    _assert_fuzzed(fuzz(demo_gateway, tmp_path / "report", SLOW_MAX_EXAMPLES), attack_report)
