"""The official TypeScript client's OAuth 2.0 client credentials against an engine that refuses anonymous callers:
it finds the authority through the engine, fetches a token, and uses it for HTTP, Socket.IO and its worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import EngineServer

from ._harness import Steps, needs_node_client, run_driver

pytestmark = [pytest.mark.integration, needs_node_client]

CLIENT_ID, CLIENT_SECRET = "oc-sachbearbeitung", "oc-secret"
CLIENTS = [
    {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "sub": CLIENT_ID,
        "scope": "engine_read engine_write",
        "claims": {"Sachbearbeitung": "true", "Automatisch": "true"},  # lanes are plain claims named after them
    }
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    workdir = tmp_path_factory.mktemp("official-clients-auth")
    server = EngineServer(data_dir=workdir / "engine", anonymous=False, clients=CLIENTS).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auth(engine: EngineServer) -> Steps:
    return run_driver("ts_auth.cjs", engine, CLIENT_ID, CLIENT_SECRET)


def test_the_dummy_token_is_refused(auth: Steps) -> None:
    assert auth["anonymous is refused"] == {"refused": True, "name": "UnauthorizedError", "code": 401}


def test_client_credentials_drive_user_tasks(auth: Steps) -> None:
    auth["deployFiles"]
    assert auth["userTasks.query"]["ownerId"] == CLIENT_ID
    auth["finishUserTask"]
    assert auth["instance outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}


def test_socket_io_authenticates_with_the_token(auth: Steps) -> None:
    assert auth["notification received"] == [auth["start"]["processInstanceId"]]


def test_the_worker_authenticates_with_client_credentials(auth: Steps) -> None:
    answer = auth["ExternalTaskWorker fetches with the token"]
    assert answer["outcome"] == {"state": "finished", "endEvents": ["EndEvent_1"]}
    assert answer["errors"] == []
