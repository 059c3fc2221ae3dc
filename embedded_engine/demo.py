"""Demo data: deploy the models in ``examples/processes`` and start a handful of instances, once.

Used by ``make run`` through ``--demo``. "Once" is remembered in the store, so a restart neither duplicates the
demo instances nor brings back tasks that somebody finished in the meantime.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .core import EngineCore
from .identity import DUMMY_TOKEN, Identity

log = logging.getLogger("embedded_engine")

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "processes"

DEMO_IDENTITY = Identity(
    user_id="demo-seeder",
    token=DUMMY_TOKEN,
    scopes=frozenset({"engine_read", "engine_write", "engine_admin"}),
    claims={},
    anonymous=False,
)

# For the approval examples (examples/seed/13_approval_workflow.py): small amounts are auto-approved, VIP customers
# go first, the rest needs review.
APPROVAL_TOKENS: tuple[dict[str, Any], ...] = (
    {"amount": 500, "customerType": "regular", "customerId": "C-1001"},
    {"amount": 1500, "customerType": "vip", "customerId": "C-1002"},
    {"amount": 25000, "customerType": "regular", "customerId": "C-1003"},
    {"amount": 750, "customerType": "vip", "customerId": "C-1004"},
    {"amount": 12000, "customerType": "regular", "customerId": "C-1005"},
)


def model_files(directory: Path = EXAMPLES_DIR) -> list[Path]:
    return sorted(directory.glob("*.bpmn"))


async def seed_demo_data(core: EngineCore, directory: Path = EXAMPLES_DIR) -> int:
    """Deploy every example model (always, so edits show up) and start demo instances on first start only."""
    files = model_files(directory)
    if not files:
        log.warning("no demo models found in %s", directory)
        return 0
    await core.deploy([path.read_text(encoding="utf-8") for path in files], overwrite=True, identity=DEMO_IDENTITY)
    if core.store_meta("demo_seeded") is not None:
        return 0
    started = 0
    models = {model["processModelId"] for model in core.process_models()}
    for token in APPROVAL_TOKENS if "ApprovalProcess" in models else ():
        await _start(core, "ApprovalProcess", token)
        started += 1
    for model_id in sorted(models - {"ApprovalProcess"}):
        await _start(core, model_id, {"requestedBy": "demo"})
        started += 1
    core.set_store_meta("demo_seeded", "1")
    log.info("demo data: deployed %d models, started %d instances", len(files), started)
    return started


async def _start(core: EngineCore, process_model_id: str, token: dict[str, Any]) -> None:
    await core.start(
        process_model_id,
        identity=DEMO_IDENTITY,
        initial_token=token,
        start_event_id=None,
        correlation_id=None,
        return_on=1,
        end_event_id=None,
    )
