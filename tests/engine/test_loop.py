from __future__ import annotations

import asyncio
import threading

from gateway.engine import get_or_create_loop


async def test_inside_a_running_loop_it_returns_that_loop() -> None:
    assert get_or_create_loop() is asyncio.get_running_loop()


def _in_thread(fn: object) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_without_a_loop_it_creates_one_and_sets_it_as_current() -> None:
    def check() -> None:
        loop = get_or_create_loop()
        try:
            assert not loop.is_closed()
            assert get_or_create_loop() is loop
            assert asyncio.get_event_loop_policy().get_event_loop() is loop
            assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    _in_thread(check)


def test_a_set_loop_is_reused() -> None:
    def check() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            assert get_or_create_loop() is loop
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    _in_thread(check)


def test_a_closed_loop_is_replaced_by_a_new_one() -> None:
    def check() -> None:
        first = get_or_create_loop()
        first.close()
        second = get_or_create_loop()
        try:
            assert second is not first
            assert not second.is_closed()
        finally:
            second.close()
            asyncio.set_event_loop(None)

    _in_thread(check)


def test_the_seeds_pattern_runs_a_coroutine_and_closes_the_loop() -> None:
    def check() -> None:
        async def main() -> str:
            return "done"

        loop = get_or_create_loop()
        assert loop.run_until_complete(main()) == "done"
        loop.close()
        asyncio.set_event_loop(None)

    _in_thread(check)
