"""The approval example model, parsed once per test module."""

from __future__ import annotations

import pytest

from embedded_engine.bpmn import ParsedDefinitions
from tests.embedded_engine.bpmn._helpers import EXAMPLES, load


@pytest.fixture(scope="module")
def approval() -> ParsedDefinitions:
    return load(EXAMPLES / "approval_process.bpmn")
