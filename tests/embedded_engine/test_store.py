"""The engine's store: group commit keeps every acknowledged write durable and every unit atomic."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from embedded_engine.store import Store


def meta(path: Path, key: str) -> str | None:
    """What a fresh connection (another process, after a crash) finds on disk."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


async def test_units_of_one_loop_turn_share_one_commit_and_are_on_disk_after_durable(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    store = Store(path)
    committed: list[str] = []

    async def write(key: str) -> None:
        store.set_meta(key, "1")
        store.after_commit(lambda: committed.append(key))
        assert meta(path, key) is None  # not yet durable: the answer must wait
        await store.durable()
        assert meta(path, key) == "1"

    await asyncio.gather(write("a"), write("b"), write("c"))
    assert sorted(committed) == ["a", "b", "c"]
    store.close()


async def test_a_failing_unit_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    store = Store(path)
    store.set_meta("kept", "1")

    def failing_unit() -> None:
        with store.transaction():
            store.set_meta("lost", "1")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_unit()
    await store.durable()
    assert meta(path, "kept") == "1"
    assert meta(path, "lost") is None
    store.close()


class FailingCommit:
    """A connection whose COMMIT fails, as on a full disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def close(self) -> None:
        self.db.close()


async def test_a_failed_commit_fails_every_writer_of_the_group_and_publishes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    store = Store(path)
    forgotten: list[bool] = []
    published: list[bool] = []
    store.on_commit_failure(lambda: forgotten.append(True))
    store._db = FailingCommit(store._db)  # type: ignore[assignment]
    store.set_meta("x", "1")
    store.after_commit(lambda: published.append(True))
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        await store.durable()
    assert forgotten == [True]
    assert published == []
    assert meta(path, "x") is None
    store.close()


def test_outside_an_event_loop_each_unit_commits_at_once(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    store = Store(path)
    store.set_meta("now", "1")
    assert meta(path, "now") == "1"
    store.close()
