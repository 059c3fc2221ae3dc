"""The gateway's /graphql passes the graphql-http GraphQL-over-HTTP audit with no error and no warning."""

from __future__ import annotations

from tests.contract.audit import problems, run_graphql_http_audit
from tests.servers import EngineServer, GatewayServer


def test_the_gateway_passes_every_graphql_over_http_audit(engine_server: EngineServer, tmp_path: object) -> None:
    gateway = GatewayServer(engine_url=engine_server.url, workdir=engine_server.data_dir.parent / "gw").start()
    try:
        results = run_graphql_http_audit(gateway.graphql_url)
    finally:
        gateway.stop()
    assert len(results) > 50
    assert problems(results) == []
