"""The Redis idempotency store on its own, against a real redis-server: two store objects stand for two instances."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gateway.adapters.redis_state import RedisIdempotencyStore, connect, record_name
from gateway.core.errors import IdempotencyUnavailable
from gateway.core.idempotency import Codec, IdempotencyKey, IdempotencyKeyReused
from tests.multi_instance.conftest import RedisServer
from tests.servers import REPO, free_port

TEXT: Codec[str] = Codec(lambda value: value.encode(), lambda raw: raw.decode())
KEY = IdempotencyKey("alice", "POST", "/api/v1/user-tasks/t-1/finish", "k-1")

StoreFactory = Callable[..., RedisIdempotencyStore]


class Work:
    """A produce() that counts its runs and answers a fixed value (after an optional gate)."""

    def __init__(self, value: str = "answer", gate: asyncio.Event | None = None) -> None:
        self.value = value
        self.gate = gate
        self.runs = 0
        self.started = asyncio.Event()

    async def __call__(self) -> str:
        self.runs += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.value


@pytest.fixture
async def stores(redis_server: RedisServer) -> AsyncIterator[StoreFactory]:
    """Stores on the package's Redis under a prefix of this test's own (tests share the server, not keys)."""
    prefix = f"test-{uuid.uuid4()}:"
    made: list[RedisIdempotencyStore] = []

    def factory(url: str | None = None, **options: object) -> RedisIdempotencyStore:
        options.setdefault("prefix", prefix)
        store = RedisIdempotencyStore.from_url(url or redis_server.url, **options)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.aclose()


@pytest.fixture
def own_redis(redis_server: RedisServer, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, for tests that stop it (after the package's: skipped as that one is)."""
    server = RedisServer(workdir=tmp_path / "redis").start()
    yield server
    server.stop()


async def test_two_instances_with_one_key_run_it_once_and_answer_the_same(stores: StoreFactory) -> None:
    first, second = stores(), stores()
    gate = asyncio.Event()
    work_a, work_b = Work("from a", gate), Work("from b", gate)
    running = [
        asyncio.create_task(first.run(KEY, "body", work_a, codec=TEXT)),
        asyncio.create_task(second.run(KEY, "body", work_b, codec=TEXT)),
    ]
    deadline = time.monotonic() + 10
    while work_a.runs + work_b.runs == 0:  # one of them claims the key and runs; the other waits for it
        assert time.monotonic() < deadline, "neither instance ran"
        await asyncio.sleep(0.01)
    gate.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*running), 10)
    assert work_a.runs + work_b.runs == 1
    assert outcomes[0].value == outcomes[1].value
    assert sorted(outcome.replayed for outcome in outcomes) == [False, True]


async def test_a_retry_on_another_instance_replays_and_another_body_is_refused(stores: StoreFactory) -> None:
    first, second = stores(), stores()
    assert (await first.run(KEY, "body", Work("first"), codec=TEXT)).replayed is False
    again = await second.run(KEY, "body", Work("second"), codec=TEXT)
    assert (again.value, again.replayed) == ("first", True)
    with pytest.raises(IdempotencyKeyReused, match="k-1"):
        await second.run(KEY, "other body", Work(), codec=TEXT)


async def test_keys_of_other_callers_methods_and_paths_are_independent(stores: StoreFactory) -> None:
    store = stores()
    await store.run(KEY, "body", Work(), codec=TEXT)
    for other in (
        IdempotencyKey("bob", KEY.method, KEY.path, KEY.key),
        IdempotencyKey(KEY.user_id, "PUT", KEY.path, KEY.key),
        IdempotencyKey(KEY.user_id, KEY.method, "/api/v1/user-tasks/t-2/finish", KEY.key),
    ):
        assert (await store.run(other, "other body", Work(), codec=TEXT)).replayed is False


def test_record_names_are_fixed_length_digests_without_the_callers_input() -> None:
    names = {record_name(IdempotencyKey("alice", "POST", "/p", key)) for key in ("k", "k" * 255, "ä:\n*")}
    assert len(names) == 3
    assert len({len(name) for name in names}) == 1
    assert all("alice" not in name and "/p" not in name for name in names)


async def test_an_answer_that_is_not_kept_or_a_failure_hands_over_to_a_waiter(stores: StoreFactory) -> None:
    first, second = stores(), stores()
    not_kept = await first.run(KEY, "body", Work("engine down"), keep=lambda value: value != "engine down", codec=TEXT)
    assert not_kept.replayed is False
    gate, claimed = asyncio.Event(), asyncio.Event()

    async def explode() -> str:
        claimed.set()
        await gate.wait()
        raise RuntimeError("boom")

    failing = asyncio.create_task(first.run(KEY, "body", explode, codec=TEXT))
    await asyncio.wait_for(claimed.wait(), 10)
    waiter_work = Work("second")
    waiter = asyncio.create_task(second.run(KEY, "body", waiter_work, codec=TEXT))
    gate.set()
    with pytest.raises(RuntimeError):
        await failing
    outcome = await asyncio.wait_for(waiter, 10)
    assert (outcome.value, outcome.replayed, waiter_work.runs) == ("second", False, 1)


async def test_a_duplicate_waits_for_the_first_at_most_its_bound(stores: StoreFactory) -> None:
    first, second = stores(), stores(wait_seconds=0.2)
    gate = asyncio.Event()
    work = Work("slow", gate)
    running = asyncio.create_task(first.run(KEY, "body", work, codec=TEXT))
    await asyncio.wait_for(work.started.wait(), 10)
    duplicate = Work()
    with pytest.raises(IdempotencyUnavailable, match="still running"):
        await asyncio.wait_for(second.run(KEY, "body", duplicate, codec=TEXT), 10)
    assert duplicate.runs == 0
    gate.set()
    assert (await running).value == "slow"
    assert (await second.run(KEY, "body", duplicate, codec=TEXT)).replayed is True


async def test_kept_answers_expire_after_the_ttl(stores: StoreFactory) -> None:
    store = stores(ttl_seconds=0.3)
    await store.run(KEY, "body", Work(), codec=TEXT)
    deadline = time.monotonic() + 10
    while True:  # replayed (or refused for another body) until the answer expires; then the new body runs
        try:
            outcome = await store.run(KEY, "other body", Work("new"), codec=TEXT)
        except IdempotencyKeyReused:
            assert time.monotonic() < deadline, "the kept answer did not expire"
            await asyncio.sleep(0.05)
            continue
        assert (outcome.value, outcome.replayed) == ("new", False)
        break


_CRASHING_OWNER = """
import asyncio, sys
from gateway.adapters.redis_state import RedisIdempotencyStore
from gateway.core.idempotency import Codec, IdempotencyKey

async def main() -> None:
    store = RedisIdempotencyStore.from_url(sys.argv[1], prefix=sys.argv[2], lease_seconds=float(sys.argv[3]))
    async def produce() -> str:
        print("running", flush=True)
        await asyncio.sleep(3600)
        return "never"
    key = IdempotencyKey("alice", "POST", "/api/v1/user-tasks/t-1/finish", "k-1")
    await store.run(key, "body", produce, codec=Codec(str.encode, bytes.decode))

asyncio.run(main())
"""


async def test_a_crashed_owners_lease_runs_out_and_a_waiter_runs(redis_server: RedisServer) -> None:
    prefix = f"test-{uuid.uuid4()}:"
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_OWNER, redis_server.url, prefix, "0.6", cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        line = await asyncio.wait_for(owner.stdout.readline(), 30)
        assert line.strip() == b"running"
        owner.kill()  # a crash: no release, no more renewals
        await owner.wait()
        store = RedisIdempotencyStore.from_url(redis_server.url, prefix=prefix, lease_seconds=0.6)
        try:
            work = Work("after the crash")
            outcome = await asyncio.wait_for(store.run(KEY, "body", work, codec=TEXT), 10)
        finally:
            await store.aclose()
        assert (outcome.value, outcome.replayed, work.runs) == ("after the crash", False, 1)
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()


async def test_only_the_owner_settles_its_record(stores: StoreFactory, redis_server: RedisServer) -> None:
    """An owner whose record was taken over (its lease ran out) neither keeps its answer nor deletes the other's."""
    prefix = f"test-{uuid.uuid4()}:"
    first, second = stores(prefix=prefix), stores(prefix=prefix)
    gate_a, gate_b = asyncio.Event(), asyncio.Event()
    work_a = Work("from a", gate_a)
    running_a = asyncio.create_task(first.run(KEY, "body", work_a, codec=TEXT))
    await asyncio.wait_for(work_a.started.wait(), 10)
    raw = connect(redis_server.url)
    try:  # A's lease is gone (as after a long pause): B claims the key
        assert await raw.delete(record_name(KEY, prefix)) == 1
    finally:
        await raw.aclose()
    work_b = Work("from b", gate_b)
    running_b = asyncio.create_task(second.run(KEY, "body", work_b, codec=TEXT))
    await asyncio.wait_for(work_b.started.wait(), 10)
    gate_a.set()
    assert (await running_a).value == "from a"  # its caller gets its real answer; the record stays B's
    gate_b.set()
    assert (await running_b).value == "from b"
    replay = await first.run(KEY, "body", Work(), codec=TEXT)
    assert (replay.value, replay.replayed) == ("from b", True)


async def test_without_redis_a_keyed_run_is_refused_before_it_runs() -> None:
    store = RedisIdempotencyStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        work = Work()
        with pytest.raises(IdempotencyUnavailable):
            await store.run(KEY, "body", work, codec=TEXT)
        assert work.runs == 0
        with pytest.raises(IdempotencyUnavailable):
            await store.ping()
    finally:
        await store.aclose()


async def test_a_hung_redis_is_refused_within_a_bound(own_redis: RedisServer) -> None:
    store = RedisIdempotencyStore.from_url(own_redis.url)
    try:
        await store.ping()
        own_redis.pause()
        try:
            started = time.monotonic()
            work = Work()
            with pytest.raises(IdempotencyUnavailable):
                await asyncio.wait_for(store.run(KEY, "body", work, codec=TEXT), 30)
            assert work.runs == 0
            assert time.monotonic() - started < 10  # a bound on waiting: about 2 s (the call timeout), not a hang
        finally:
            own_redis.resume()
    finally:
        await store.aclose()


async def test_redis_failing_after_the_write_ran_still_answers_the_write(own_redis: RedisServer) -> None:
    store = RedisIdempotencyStore.from_url(own_redis.url)
    try:

        async def write_then_lose_redis() -> str:
            own_redis.kill()
            return "written"

        outcome = await store.run(KEY, "body", write_then_lose_redis, codec=TEXT)
        assert (outcome.value, outcome.replayed) == ("written", False)
        own_redis.start()  # the same port; nothing was kept (and nothing saved): a retry runs again
        retry = Work("again")
        assert (await store.run(KEY, "body", retry, codec=TEXT)).replayed is False
        assert retry.runs == 1
    finally:
        await store.aclose()
