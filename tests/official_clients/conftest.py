"""One embedded engine per test module (anonymous access, as the official clients' defaults expect)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import EngineServer


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    workdir = tmp_path_factory.mktemp("official-clients")
    server = EngineServer(data_dir=workdir / "engine").start()
    try:
        yield server
    finally:
        server.stop()
