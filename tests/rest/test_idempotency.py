"""The idempotency store on its own: replays, reuse, waiting duplicates, expiry and bounds."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.idempotency import IdempotencyKey, IdempotencyKeyReused, IdempotencyStore, fingerprint

KEY = IdempotencyKey("alice", "POST", "/api/v1/user-tasks/t-1/finish", "k-1")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Work:
    """A produce() that counts its runs and answers a fixed value (after an optional gate)."""

    def __init__(self, value: object = "answer", gate: asyncio.Event | None = None) -> None:
        self.value = value
        self.gate = gate
        self.runs = 0

    async def __call__(self) -> object:
        self.runs += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.value


async def test_a_repeated_request_gets_the_first_answer_without_running_again() -> None:
    store, work = IdempotencyStore(), Work()
    first = await store.run(KEY, "body", work)
    second = await store.run(KEY, "body", Work("another answer"))
    assert (first.value, first.replayed) == ("answer", False)
    assert (second.value, second.replayed) == ("answer", True)
    assert work.runs == 1


async def test_the_same_key_with_another_body_is_refused() -> None:
    store = IdempotencyStore()
    await store.run(KEY, "body", Work())
    with pytest.raises(IdempotencyKeyReused, match="k-1"):
        await store.run(KEY, "other body", Work())


async def test_keys_of_other_callers_methods_and_paths_are_independent() -> None:
    store = IdempotencyStore()
    await store.run(KEY, "body", Work())
    for other in (
        IdempotencyKey("bob", KEY.method, KEY.path, KEY.key),
        IdempotencyKey(KEY.user_id, "PUT", KEY.path, KEY.key),
        IdempotencyKey(KEY.user_id, KEY.method, "/api/v1/user-tasks/t-2/finish", KEY.key),
    ):
        assert (await store.run(other, "other body", Work())).replayed is False


async def test_concurrent_duplicates_wait_for_the_first_one() -> None:
    store, gate = IdempotencyStore(), asyncio.Event()
    work = Work(gate=gate)
    runs = [asyncio.create_task(store.run(KEY, "body", work)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*runs)
    assert work.runs == 1
    assert [outcome.value for outcome in outcomes] == ["answer"] * 5
    assert sum(not outcome.replayed for outcome in outcomes) == 1


async def test_an_answer_that_is_not_kept_lets_the_next_request_run() -> None:
    store = IdempotencyStore()
    failing = Work("engine down")
    assert (await store.run(KEY, "body", failing, keep=lambda value: value != "engine down")).replayed is False
    retry = Work("done")
    outcome = await store.run(KEY, "body", retry)
    assert (outcome.value, outcome.replayed, retry.runs) == ("done", False, 1)


async def test_a_failing_first_request_hands_over_to_a_waiting_duplicate() -> None:
    store, gate = IdempotencyStore(), asyncio.Event()

    async def explode() -> object:
        await gate.wait()
        raise RuntimeError("boom")

    first = asyncio.create_task(store.run(KEY, "body", explode))
    await asyncio.sleep(0)
    second_work = Work("second")
    second = asyncio.create_task(store.run(KEY, "body", second_work))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert (await second).value == "second"
    assert second_work.runs == 1


async def test_answers_expire_after_the_ttl() -> None:
    clock = Clock()
    store = IdempotencyStore(ttl_seconds=60, clock=clock)
    await store.run(KEY, "body", Work())
    clock.now = 59
    assert (await store.run(KEY, "body", Work())).replayed is True
    clock.now = 61
    assert (await store.run(KEY, "other body", Work())).replayed is False
    assert len(store) == 1


async def test_the_store_is_bounded_by_entries_and_weight() -> None:
    store = IdempotencyStore(max_entries=3, max_weight=100)
    keys = [IdempotencyKey("alice", "POST", "/p", f"k-{number}") for number in range(5)]
    for key in keys:
        await store.run(key, "body", Work(), weigh=lambda _: 10)
    assert len(store) == 3
    assert (await store.run(keys[0], "other", Work())).replayed is False  # the oldest went first
    assert (await store.run(keys[4], "body", Work())).replayed is True
    await store.run(IdempotencyKey("alice", "POST", "/p", "heavy"), "body", Work(), weigh=lambda _: 100)
    assert len(store) == 1  # the newest answer stays even when it alone fills the store


def test_fingerprints_ignore_member_order_and_spacing() -> None:
    assert fingerprint({"result": {"a": 1, "b": [1, 2]}}) == fingerprint({"result": {"b": [1, 2], "a": 1}})
    assert fingerprint({"result": {"a": 1}}) != fingerprint({"result": {"a": 2}})
