"""Data directories of the embedded engine holding N suspended "Approve order" tasks, made fast and kept.

    python -m bench.seed DATA_DIR TASKS

Starting 100,000 instances over HTTP takes too long, so the engine's own core (``EngineCore`` on a ``Store``) starts
them in-process, a few thousand per SQLite transaction: the same code path as ``POST .../start``, minus HTTP. The
result is an ordinary data directory that ``python -m embedded_engine --data-dir`` serves. A ``seeded.json`` marker
is written last; a directory without a matching marker is rebuilt. Directories live under ``.data/bench/``
(gitignored), so only the first run pays (about a minute for 100,000 tasks).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .servers import REPO

APPROVAL_BPMN = REPO / "examples" / "processes" / "approval_process.bpmn"
MODEL_ID = "ApprovalProcess"
MARKER = "seeded.json"
CHUNK = 5_000


def token_of(index: int) -> dict[str, Any]:
    """The initial token of the index-th instance: ``amount`` is unique, so ``amount == k`` matches one task."""
    return {"amount": index, "customerType": "vip" if index % 2 else "regular", "customerId": f"C{index:06d}"}


def _fingerprint(tasks: int) -> dict[str, Any]:
    from embedded_engine.store import SCHEMA_VERSION

    digest = hashlib.sha256(APPROVAL_BPMN.read_bytes()).hexdigest()[:16]
    return {"tasks": tasks, "model": digest, "schema": SCHEMA_VERSION, "token": "amount-customerType-customerId/1"}


def is_seeded(data_dir: Path, tasks: int) -> bool:
    marker = data_dir / MARKER
    if not marker.exists():
        return False
    try:
        return bool(json.loads(marker.read_text()) == _fingerprint(tasks))
    except (OSError, ValueError):
        return False


async def _seed(data_dir: Path, tasks: int) -> None:
    from embedded_engine.core import EngineCore
    from embedded_engine.events import EventBus
    from embedded_engine.identity import ANONYMOUS_IDENTITY
    from embedded_engine.store import Store

    store = Store(data_dir / "engine.sqlite3")
    try:
        core = EngineCore(store, EventBus(), workflow_cache_size=1)
        await core.deploy([APPROVAL_BPMN.read_text(encoding="utf-8")], overwrite=True, identity=ANONYMOUS_IDENTITY)
        for start in range(0, tasks, CHUNK):
            with store.transaction():
                for index in range(start, min(start + CHUNK, tasks)):
                    await core.start(
                        MODEL_ID,
                        identity=ANONYMOUS_IDENTITY,
                        initial_token=token_of(index),
                        start_event_id=None,
                        correlation_id=None,
                        return_on=1,
                        end_event_id=None,
                    )
            await asyncio.sleep(0)  # let the store's group commit run: one transaction per chunk
    finally:
        store.close()


def seed(data_dir: Path, tasks: int) -> None:
    """(Re)build ``data_dir`` with ``tasks`` suspended ApprovalProcess tasks, in this process."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    asyncio.run(_seed(data_dir, tasks))
    (data_dir / MARKER).write_text(json.dumps(_fingerprint(tasks)))


def ensure_seeded(data_dir: Path, tasks: int) -> tuple[bool, float]:
    """Seed in a child process unless a matching directory exists; answer (seeded now, seconds taken)."""
    if is_seeded(data_dir, tasks):
        return False, 0.0
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.seed", str(data_dir), str(tasks)], cwd=REPO, check=True)
    if not is_seeded(data_dir, tasks):
        raise SystemExit(f"seeding {data_dir} did not finish")
    return True, time.perf_counter() - started


def main() -> None:
    data_dir, tasks = Path(sys.argv[1]), int(sys.argv[2])
    seed(data_dir, tasks)


if __name__ == "__main__":
    main()
