"""Real servers for tests: the embedded engine in its own process on a free loopback port.

Tests talk to it over real HTTP, exactly as the gateway talks to a real ProcessCube engine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.adapters.embedded_engine import READY_PATH, engine_command
from gateway.metrics import engine_requests_in, metric_in

REPO = Path(__file__).resolve().parents[1]
API = "/atlas_engine/api/v1"
DUMMY_TOKEN = "ZHVtbXlfdG9rZW4="


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(kw_only=True)
class ServerProcess:
    """A server in its own process on a free loopback port, ready once ``ready_url`` answers 200."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, args: list[str], *, log_path: Path, ready_url: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        for _attempt in range(1200):  # 60 s
            if self.process.poll() is not None:
                raise RuntimeError(f"{args[2]} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(ready_url, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{args[2]} did not start within 60 s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop without a clean shutdown, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass(kw_only=True)
class EngineServer(ServerProcess):
    """An embedded engine process. ``url`` is the engine root (without ``/atlas_engine/api/v1``)."""

    data_dir: Path
    anonymous: bool = True
    clients: Sequence[dict[str, Any]] | None = None
    demo: bool = False
    extra_args: Sequence[str] = ()

    @property
    def api(self) -> str:
        return self.url + API

    @property
    def authority_url(self) -> str:
        return self.url + "/authority"

    def start(self) -> EngineServer:
        clients_file: Path | None = None
        if self.clients is not None:
            clients_file = self.data_dir.parent / f"clients-{self.port}.json"
            clients_file.write_text(json.dumps(list(self.clients)))
        args = engine_command(
            self.port,
            self.data_dir,
            demo=self.demo,
            anonymous=self.anonymous,
            clients_file=clients_file,
            extra_args=self.extra_args,
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.spawn(args, log_path=self.data_dir.parent / f"engine-{self.port}.log", ready_url=self.url + READY_PATH)
        return self

    def restart(self) -> EngineServer:
        self.stop()
        return self.start()

    # -- small synchronous helpers for arranging tests -------------------------------------------------------

    def headers(self, token: str = DUMMY_TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def token(self, client_id: str, client_secret: str) -> str:
        """An access token from the engine's authority (client credentials), as a client of it would get one."""
        discovery = httpx.get(self.authority_url + "/.well-known/openid-configuration").json()
        response = httpx.post(
            discovery["token_endpoint"],
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def deploy(self, xml: str, *, overwrite: bool = True, token: str = DUMMY_TOKEN) -> None:
        response = httpx.post(
            self.api + "/process_definitions",
            json={"xml": xml, "overwriteExisting": overwrite},
            headers=self.headers(token),
        )
        response.raise_for_status()

    def deploy_file(self, path: Path) -> None:
        self.deploy(path.read_text(encoding="utf-8"))

    def start_instance(
        self, process_model_id: str, token_payload: Any = None, *, token: str = DUMMY_TOKEN, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"processModelId": process_model_id, "returnOn": 1, **extra}
        if token_payload is not None:
            body["initialToken"] = token_payload
        response = httpx.post(
            f"{self.api}/process_models/{process_model_id}/start",
            json=body,
            headers=self.headers(token),
            timeout=30,
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def process_instance(self, process_instance_id: str, *, token: str = DUMMY_TOKEN) -> dict[str, Any]:
        """The one process instance with this id, as ``GET /process_instances/query`` answers it."""
        response = httpx.get(
            self.api + "/process_instances/query",
            params={"processInstanceId": process_instance_id},
            headers=self.headers(token),
        )
        response.raise_for_status()
        instances = response.json()["processInstances"]
        assert len(instances) == 1, instances
        found: dict[str, Any] = instances[0]
        return found

    def flow_nodes(self, *, token: str = DUMMY_TOKEN, **params: Any) -> list[dict[str, Any]]:
        """``GET /flow_node_instances`` with these query parameters: the flow node instances it answers."""
        response = httpx.get(self.api + "/flow_node_instances", params=params, headers=self.headers(token))
        response.raise_for_status()
        nodes: list[dict[str, Any]] = response.json()["flowNodeInstances"]
        return nodes

    def user_tasks(self, *, token: str = DUMMY_TOKEN, **params: Any) -> list[dict[str, Any]]:
        query = {"flowNodeType": "bpmn:UserTask", "state": "suspended", **params}
        response = httpx.get(self.api + "/flow_node_instances", params=query, headers=self.headers(token))
        response.raise_for_status()
        tasks: list[dict[str, Any]] = response.json()["flowNodeInstances"]
        return tasks

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def poll(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds (a bound on waiting, not a timing check)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


__all__ = ["API", "DUMMY_TOKEN", "REPO", "EngineServer", "GatewayServer", "free_port", "poll", "port_is_closed"]


@dataclass(kw_only=True)
class GatewayServer(ServerProcess):
    """``python -m gateway`` in its own process, pointed at an engine by environment variables only."""

    engine_url: str | None
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def graphql_url(self) -> str:
        return self.url + "/graphql"

    def start(self) -> GatewayServer:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "PROCESSCUBE_"))}
        env.update({"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.port), "GATEWAY_LOG_LEVEL": "warning"})
        if self.engine_url is not None:
            env["PROCESSCUBE_ENGINE_URL"] = self.engine_url
        env.update(self.env)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spawn(
            [sys.executable, "-m", "gateway"],
            log_path=self.workdir / f"gateway-{self.port}.log",
            ready_url=self.url + "/healthz",
            env=env,
        )
        return self

    def engine_calls(self) -> int:
        """HTTP requests the gateway sent to the engine so far (its ``GET /metrics`` counter)."""
        return engine_requests_in(httpx.get(self.url + "/metrics").text)

    def metric(self, name: str) -> float:
        """A metric of ``GET /metrics``, summed over its labels (``gateway_live_subscriptions``, ...)."""
        return metric_in(httpx.get(self.url + "/metrics").text, name)

    def engine_events_settled(self, quiet_seconds: float = 0.15, timeout: float = 10.0) -> None:
        """Wait until the gateway has heard the engine's events of what just happened (none for ``quiet_seconds``).

        Each event invalidates the gateway's read cache: a test that counts engine calls after writing at the
        engine directly waits for them first, so an event arriving late cannot make a cached read a fresh one.
        """
        deadline = time.monotonic() + timeout
        heard, since = self.metric("gateway_engine_events_total"), time.monotonic()
        while time.monotonic() - since < quiet_seconds and time.monotonic() < deadline:
            time.sleep(0.03)
            now = self.metric("gateway_engine_events_total")
            if now != heard:
                heard, since = now, time.monotonic()

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            self.graphql_url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def gateway_with_embedded_engine(
    workdir: Path, *, engine_port: int = 0, demo: bool = False, **env: str
) -> GatewayServer:
    """A gateway as `make run` starts it: no engine URL, so it starts (and supervises) its own embedded engine.

    The engine keeps its data in ``workdir/engine``; ``engine_port`` 0 takes any free port. Not started yet.
    """
    settings = {
        "GATEWAY_EMBEDDED_ENGINE_PORT": str(engine_port),
        "GATEWAY_EMBEDDED_ENGINE_DATA_DIR": str(workdir / "engine"),
        "GATEWAY_UNSAFE_ANONYMOUS_ROOT": "true",
        **({"GATEWAY_EMBEDDED_ENGINE_DEMO": "true"} if demo else {}),
        **env,
    }
    return GatewayServer(engine_url=None, workdir=workdir, env=settings)


def gateway_in_front_of(engine_url: str, workdir: Path, **env: object) -> GatewayServer:
    """A gateway pointed at a running engine, anonymous callers allowed as the engine's root (as `make run` does).

    ``env`` adds or overrides settings: ``gateway_in_front_of(engine.url, tmp, GATEWAY_MAX_BODY_BYTES=2048)``.
    Not started yet.
    """
    settings = {"GATEWAY_ALLOW_ANONYMOUS": "true", **{key: str(value) for key, value in env.items()}}
    settings.setdefault("GATEWAY_UNSAFE_ANONYMOUS_ROOT", settings["GATEWAY_ALLOW_ANONYMOUS"])
    return GatewayServer(engine_url=engine_url, workdir=workdir, env=settings)
