"""The circuit breaker (`gateway.engine.circuit`) with a fake clock, alone and inside the client."""

from __future__ import annotations

import httpx
import pytest

from gateway.engine import (
    CircuitBreaker,
    CircuitOpenError,
    EngineServerError,
    EngineTimeoutError,
    EngineUnavailableError,
    OutcomeUnknownError,
    RetryPolicy,
    UserTaskClient,
)

from ._helpers import ENGINE, NoSleep, task_list


def state_of(breaker: CircuitBreaker) -> str:
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_threshold_failures_in_a_row_and_fails_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=5.0, clock=clock)
    for _ in range(2):
        assert breaker.before_call("x") is False
        breaker.failed()
    assert state_of(breaker) == "closed"
    breaker.before_call("x")
    breaker.failed()
    assert state_of(breaker) == "open"
    assert breaker.opened == 1
    clock.now += 4.0
    with pytest.raises(CircuitOpenError) as caught:
        breaker.before_call("finish user task t1")
    assert not caught.value.request_sent  # a write failed here is provably not done
    assert isinstance(caught.value, EngineUnavailableError)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert "finish user task t1" in str(caught.value)
    assert breaker.rejected == 1


def test_an_answer_sets_the_count_back() -> None:
    breaker = CircuitBreaker(threshold=3, clock=Clock())
    for _ in range(10):
        breaker.failed()
        breaker.failed()
        breaker.succeeded()
    assert state_of(breaker) == "closed"


def test_after_the_cooldown_one_probe_goes_out_and_its_answer_closes_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=2.0, clock=clock)
    breaker.failed()
    clock.now += 2.0
    assert state_of(breaker) == "half_open"
    assert breaker.before_call("probe") is True
    with pytest.raises(CircuitOpenError):  # only one probe at a time
        breaker.before_call("another")
    breaker.succeeded(probe=True)
    assert state_of(breaker) == "closed"
    assert breaker.before_call("x") is False


def test_an_unreachable_probe_opens_it_again_for_a_whole_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=2.0, clock=clock)
    breaker.failed()
    clock.now += 3.0
    assert breaker.before_call("probe") is True
    breaker.failed(probe=True)
    assert state_of(breaker) == "open"
    clock.now += 1.9
    with pytest.raises(CircuitOpenError):
        breaker.before_call("x")
    clock.now += 0.1
    assert breaker.before_call("probe") is True
    assert breaker.opened == 2


def test_a_probe_that_tells_nothing_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=1.0, clock=clock)
    breaker.failed()
    clock.now += 1.0
    assert breaker.before_call("probe") is True
    breaker.abandoned(probe=True)  # it timed out: the engine may be slow, not dead
    assert state_of(breaker) == "half_open"
    assert breaker.before_call("next probe") is True


def test_threshold_zero_never_opens() -> None:
    breaker = CircuitBreaker(threshold=0, clock=Clock())
    for _ in range(100):
        breaker.failed()
    assert state_of(breaker) == "closed"


# -- inside the client -----------------------------------------------------------------------------------------------


def _client(handler: httpx.MockTransport, breaker: CircuitBreaker) -> UserTaskClient:
    return UserTaskClient(ENGINE, transport=handler, retry=RetryPolicy(max_retries=3, sleep=NoSleep()), circuit=breaker)


async def test_the_client_fails_at_once_while_open_and_sends_nothing() -> None:
    clock = Clock()
    sent: list[httpx.Request] = []
    engine_up = False

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if not engine_up:
            raise httpx.ConnectError("refused", request=request)
        return task_list()

    breaker = CircuitBreaker(threshold=5, cooldown=2.0, clock=clock)
    async with _client(httpx.MockTransport(handler), breaker) as client:
        with pytest.raises(EngineUnavailableError):
            await client.get_user_tasks()  # 1 + 3 retries
        with pytest.raises(CircuitOpenError):
            await client.get_user_tasks()  # the fifth refusal opens it; the retry fails at once
        assert len(sent) == 5
        assert state_of(client.circuit) == "open"
        for _ in range(100):
            with pytest.raises(CircuitOpenError):
                await client.finish_user_task("t1", {"approved": True})
        assert len(sent) == 5
        assert client.request_count == 5  # a call failed at once is no request sent
        view = client.with_token("someone-else")
        assert view.circuit_state == "open"  # one engine, one state for every view of the pool

        clock.now += 2.0
        engine_up = True
        assert await view.get_user_tasks() == []  # the probe
        assert state_of(client.circuit) == "closed"
        assert len(sent) == 6


async def test_timeouts_and_answers_do_not_open_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            raise httpx.ReadTimeout("slow", request=request)
        if "slow" in str(request.url):
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(500, json={"message": "boom"})

    breaker = CircuitBreaker(threshold=2, clock=Clock())
    async with _client(httpx.MockTransport(handler), breaker) as client:
        for _ in range(5):
            with pytest.raises(OutcomeUnknownError) as caught:
                await client.finish_user_task("t1", {"approved": True})
            assert caught.value.timed_out
            with pytest.raises(EngineTimeoutError):
                await client.get_user_tasks(flow_node_id="slow")
            with pytest.raises(EngineServerError):  # an answer, if a bad one
                await client.get_user_tasks()
        assert state_of(breaker) == "closed"
