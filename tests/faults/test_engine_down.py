"""An engine that is down: at the gateway's start, for a while (the circuit breaker), and back again.

Each test has its own servers (it stops an engine). Bounds, not timings: what is counted is requests and
connections at the fault proxy.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import deploy_examples
from tests.faults.proxy import FaultProxy
from tests.rest.conftest import Approvals
from tests.servers import EngineServer, free_port, gateway_in_front_of, poll

READS = r"/flow_node_instances$"


def test_an_engine_down_at_start_then_back_without_restarting_the_gateway(tmp_path: Path) -> None:
    engine = EngineServer(data_dir=tmp_path / "engine", port=free_port())  # not started yet
    gateway = gateway_in_front_of(engine.url, tmp_path / "gateway").start()  # starts all the same
    try:
        with httpx.Client(base_url=gateway.url, timeout=60) as http:
            listed = http.get("/api/v1/user-tasks")
            assert listed.status_code == 503, listed.text
            assert listed.json()["code"] == "ENGINE_UNAVAILABLE"
            assert int(listed.headers["Retry-After"]) > 0
            body = http.post("/graphql", json={"query": "{ userTasks { totalCount } }"}).json()
            assert body["errors"][0]["extensions"]["code"] == "ENGINE_UNAVAILABLE"
            assert http.get("/readyz").status_code == 503

            deploy_examples(engine.start())
            [task_id] = Approvals(engine, "back").start([7])
            # recovery: the circuit's probe closes it, the event stream reconnects; no restart of the gateway
            poll(lambda: http.get(f"/api/v1/user-tasks/{task_id}").status_code == 200, within=60)
            poll(lambda: http.get("/readyz").status_code == 200, within=60)
            finished = http.post(f"/api/v1/user-tasks/{task_id}/finish", json={"result": {"approved": True}})
            assert finished.status_code == 200, finished.text
    finally:
        gateway.stop()
        engine.stop()


def test_a_dead_engine_costs_callers_no_connect_attempt_each(tmp_path: Path) -> None:
    engine = deploy_examples(EngineServer(data_dir=tmp_path / "engine").start())
    with FaultProxy(engine.port) as proxy:
        gateway = gateway_in_front_of(proxy.url, tmp_path / "gateway", GATEWAY_CACHE_TTL_SECONDS=0).start()
        try:
            with httpx.Client(base_url=gateway.url, timeout=60) as http:
                assert http.get("/api/v1/user-tasks").status_code == 200
                engine.stop()  # the proxy stays: it resets every connection it cannot pass on
                before = proxy.count("GET", READS)
                calls = 50
                codes = [http.get("/api/v1/user-tasks").json()["code"] for _ in range(calls)]
                attempts = proxy.count("GET", READS) - before
                assert codes == ["ENGINE_UNAVAILABLE"] * calls
                # without the breaker: 4 attempts a call (1 + 3 retries), 200 in all; with it: the 5 that open
                # the circuit, and a probe after each 2 s cool-down (a bound: a slow machine may see a few)
                assert attempts <= 12, attempts
                assert proxy.upstream_refused >= 5
                assert gateway.metric("gateway_engine_circuit_open") == 1

                engine.start()  # back on the same port, behind the same proxy
                poll(lambda: http.get("/api/v1/user-tasks").status_code == 200, within=60)
                assert gateway.metric("gateway_engine_circuit_open") == 0
        finally:
            gateway.stop()
            engine.stop()
