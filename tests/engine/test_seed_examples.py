"""Every example of the seed document runs against the embedded engine and does what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.engine import UserTaskClient
from tests.conftest import EXAMPLES
from tests.servers import REPO, EngineServer

from ._engine import finished, result_of, start_approvals

SEED = REPO / "examples" / "seed"

pytestmark = pytest.mark.integration


def run_seed(script: str, server: EngineServer, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PROCESSCUBE_ENGINE_URL": server.url, **env}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, str(SEED / script)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, f"{script} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture
async def client(approval_engine: EngineServer) -> AsyncIterator[UserTaskClient]:
    async with UserTaskClient(approval_engine.url) as client:
        yield client


def test_every_example_of_the_seed_has_a_script() -> None:
    scripts = sorted(p.name for p in SEED.glob("*.py"))
    assert len(scripts) == 17
    for script in scripts:
        text = (SEED / script).read_text(encoding="utf-8")
        assert "processcube_client" not in text
        assert 'os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")' in text


async def test_01_basic_finishes_every_task(approval_engine: EngineServer, client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": 100}, {"amount": 200}])
    out = run_seed("01_basic.py", approval_engine).stdout
    for task_id in ids:
        assert f"User Task: {task_id}" in out
        assert result_of(await finished(client, task_id)) == {"approved": True, "comment": "Genehmigt"}
    assert "Token: {'amount': 100" in out


async def test_02_all_tasks_lists_every_task_and_changes_nothing(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    assert "Keine User Tasks verfügbar" in run_seed("02_all_tasks.py", approval_engine).stdout
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    out = run_seed("02_all_tasks.py", approval_engine).stdout
    for task_id in ids:
        assert f"Task-ID: {task_id}" in out
        assert (await client.get_user_task(task_id))["state"] == "suspended"
    assert "Prozess: " in out


async def test_03_filter_prints_the_approval_tasks(approval_engine: EngineServer, client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    out = run_seed("03_filter.py", approval_engine).stdout
    assert sorted(out.split()) == sorted(["Approval", "Task:"] * 2 + ids)


async def test_04_reserve_reserves_the_first_task(approval_engine: EngineServer, client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    out = run_seed("04_reserve.py", approval_engine).stdout
    assert "Task reserviert für user@example.com" in out
    assert "Result: None" in out
    tasks = await client.get_user_tasks_by_ids(ids)
    assert sorted(str(t["reservedFor"]) for t in tasks) == ["None", "user@example.com"]


async def test_05_cancel_reservation_clears_every_reservation(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}, {"amount": 3}])
    await client.reserve_user_task(ids[0], "a@example.com")
    await client.reserve_user_task(ids[1], "b@example.com")
    out = run_seed("05_cancel_reservation.py", approval_engine).stdout
    assert f"Reservierung aufgehoben: {ids[0]}" in out
    assert f"Reservierung aufgehoben: {ids[1]}" in out
    assert ids[2] not in out
    assert all(t["reservedFor"] is None for t in await client.get_user_tasks_by_ids(ids))


async def test_06_finish_finishes_one_task_with_the_seeds_result(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    out = run_seed("06_finish.py", approval_engine).stdout
    tasks = {t["userTaskInstanceId"]: t for t in await client.get_user_tasks_by_ids(ids)}
    done = [t for t in tasks.values() if t["state"] == "finished"]
    assert len(done) == 1
    assert f"Task abgeschlossen: {done[0]['userTaskInstanceId']}" in out
    assert result_of(done[0]) == {
        "approved": True,
        "approver": "manager@example.com",
        "comment": "Genehmigt am 2024-01-15",
        "amount": 1500,
    }


async def test_07_validation_refuses_amounts_over_10000(approval_engine: EngineServer, client: UserTaskClient) -> None:
    small, big = await start_approvals(client, [{"amount": 500}, {"amount": 20000}])
    run_seed("07_finish_with_validation.py", approval_engine)
    assert result_of(await finished(client, small)) == {"approved": True}
    assert result_of(await finished(client, big)) == {"approved": False, "reason": "Betrag zu hoch"}


async def test_08_parallel_finishes_every_task_exactly_once(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    ids = await start_approvals(client, [{"amount": i} for i in range(25)])
    out = run_seed("08_parallel.py", approval_engine).stdout
    assert "25 Tasks verarbeitet" in out
    lines = [line for line in out.splitlines() if line.startswith("Task abgeschlossen: ")]
    assert sorted(line.removeprefix("Task abgeschlossen: ") for line in lines) == sorted(ids)
    for task_id in ids:
        assert result_of(await finished(client, task_id)) == {
            "processed": True,
            "timestamp": "2024-01-15T10:30:00Z",
        }


async def test_09_auth_uses_client_credentials_of_the_embedded_authority(
    engine_server_factory: Callable[..., EngineServer],
) -> None:
    server = engine_server_factory(anonymous=False)
    async with UserTaskClient(
        server.url,
        client_id="user-task-worker",
        client_secret="secret-key",
        authority_url=server.authority_url,
    ) as client:
        for path in sorted(EXAMPLES.glob("*.bpmn")):
            await client.deploy_process(path.read_text(encoding="utf-8"))
        ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
        run_seed("09_auth.py", server, PROCESSCUBE_AUTHORITY_URL=server.authority_url)
        for task_id in ids:
            assert result_of(await finished(client, task_id)) == {"approved": True}


async def test_10_existing_loop_prints_every_task(approval_engine: EngineServer, client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    out = run_seed("10_existing_loop.py", approval_engine).stdout
    assert sorted(out.split()) == sorted(["Task:"] * 2 + ids)


async def test_11_endpoint_style_finishes_the_tasks_and_answers_json(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    answer: dict[str, Any] = json.loads(run_seed("11_fastapi_style.py", approval_engine).stdout)
    assert answer["processed"] == 2
    assert sorted(answer["tasks"]) == sorted(ids)
    for task_id in ids:
        assert result_of(await finished(client, task_id)) == {"approved": True}


async def test_12_error_handling_catches_the_engines_refusal_and_goes_on(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    reserved, free = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    await client.reserve_user_task(reserved, "someone-else@example.com")
    out = run_seed("12_error_handling.py", approval_engine).stdout
    assert f"Fehler bei Task {reserved}: 409" in out
    assert "Allgemeiner Fehler" not in out
    assert (await client.get_user_task(reserved))["state"] == "suspended"
    assert result_of(await finished(client, free)) == {"approved": True}


async def test_12_error_handling_reports_an_unreachable_engine(engine_server: EngineServer) -> None:
    url = engine_server.url
    engine_server.stop()
    out = run_seed("12_error_handling.py", engine_server, PROCESSCUBE_ENGINE_URL=url).stdout
    assert "Allgemeiner Fehler: engine unreachable" in out


async def test_13_approval_workflow_applies_the_business_rules(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    small, vip, review = await start_approvals(
        client,
        [
            {"amount": 500, "customerType": "regular", "customerId": "C-1"},
            {"amount": 5000, "customerType": "vip", "customerId": "C-2"},
            {"amount": 5000, "customerType": "regular", "customerId": "C-3"},
        ],
    )
    out = run_seed("13_approval_workflow.py", approval_engine).stdout
    assert out.count("verarbeitet: True") == 2
    assert out.count("verarbeitet: False") == 1
    assert result_of(await finished(client, small)) == {
        "approved": True,
        "autoApproved": True,
        "reason": "Betrag unter Schwellwert",
    }
    assert result_of(await finished(client, vip)) == {
        "approved": True,
        "priority": "high",
        "reason": "VIP-Kunde",
    }
    assert result_of(await finished(client, review)) == {
        "approved": False,
        "requiresReview": True,
        "reason": "Manuelle Prüfung erforderlich",
    }


async def test_14_database_decides_by_the_customers_credit_limit(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    within, over = await start_approvals(
        client, [{"amount": 1000, "customerId": "C-1"}, {"amount": 1000, "customerId": "C-2"}]
    )
    run_seed("14_database.py", approval_engine)
    assert result_of(await finished(client, within)) == {"approved": True, "customerName": "Alice GmbH"}
    assert result_of(await finished(client, over)) == {"approved": False, "customerName": "Bob AG"}


async def test_15_logging_logs_and_finishes(approval_engine: EngineServer, client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    completed = run_seed("15_logging.py", approval_engine)
    assert "Gefundene Tasks: 2" in completed.stderr
    assert completed.stderr.count("Task abgeschlossen: ") == 2
    for task_id in ids:
        assert result_of(await finished(client, task_id)) == {"approved": True}


async def test_16_retry_finishes_every_task(approval_engine: EngineServer, client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": 1}, {"amount": 2}])
    out = run_seed("16_retry.py", approval_engine).stdout
    assert out.count("abgeschlossen: True") == 2
    for task_id in ids:
        assert result_of(await finished(client, task_id)) == {"approved": True}


async def test_17_both_context_manager_styles_see_the_tasks(
    approval_engine: EngineServer, client: UserTaskClient
) -> None:
    await start_approvals(client, [{"amount": 1}, {"amount": 2}, {"amount": 3}])
    assert run_seed("17_context_manager.py", approval_engine).stdout.split() == ["3", "3"]
