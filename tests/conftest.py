"""Fixtures shared by every test package: real servers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REPO, EngineServer, GatewayServer, gateway_in_front_of

pytest_plugins = ["tests.report"]  # the fault and attack report printed at the end of a run

EXAMPLES = REPO / "examples" / "processes"
SHARED_PROCESSES = REPO.parent / "shared" / "processes"

EngineFactory = Callable[..., EngineServer]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run the long fuzzing budgets too")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: uses real servers on loopback")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow fuzzing budget: run with `make test-slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def engine_server_factory(tmp_path: Path) -> Iterator[EngineFactory]:
    """Start embedded engines with options: ``engine_server_factory(anonymous=False, clients=[...])``."""
    started: list[EngineServer] = []

    def factory(**options: Any) -> EngineServer:
        data_dir = options.pop("data_dir", None) or tmp_path / f"engine-{len(started)}"
        server = EngineServer(data_dir=data_dir, **options).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def engine_server(engine_server_factory: EngineFactory) -> EngineServer:
    """A fresh embedded engine (anonymous access on, no models deployed)."""
    return engine_server_factory()


@pytest.fixture
def approval_engine(engine_server: EngineServer) -> EngineServer:
    """A fresh embedded engine with every example model deployed."""
    return deploy_examples(engine_server)


def deploy_examples(engine: EngineServer) -> EngineServer:
    """Deploy every example model (``examples/processes``) to ``engine``."""
    for path in sorted(EXAMPLES.glob("*.bpmn")):
        engine.deploy_file(path)
    return engine


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """One engine for a test module, with every example model deployed."""
    with EngineServer(data_dir=tmp_path_factory.mktemp("shared-engine") / "data") as engine:
        yield deploy_examples(engine)


@pytest.fixture
def gateway_factory(tmp_path: Path, approval_engine: EngineServer) -> Iterator[Callable[..., GatewayServer]]:
    """Gateways in own processes before ``approval_engine``: ``gateway_factory(GATEWAY_MAX_BODY_BYTES=2048)``."""
    started: list[GatewayServer] = []

    def factory(**env: Any) -> GatewayServer:
        gateway = gateway_in_front_of(approval_engine.url, tmp_path / f"gateway-{len(started)}", **env).start()
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()


GatewayFactory = Callable[..., GatewayServer]


@pytest.fixture(scope="module")
def module_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """One empty engine for a test module (no models deployed)."""
    server = EngineServer(data_dir=tmp_path_factory.mktemp("module") / "engine").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def start_gateway(module_engine: EngineServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    """Start gateways in front of the module's engine: ``start_gateway(GATEWAY_MAX_BODY_BYTES=…)``."""
    started: list[GatewayServer] = []

    def start(**env: Any) -> GatewayServer:
        gateway = gateway_in_front_of(module_engine.url, tmp_path_factory.mktemp("gateway"), **env).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
