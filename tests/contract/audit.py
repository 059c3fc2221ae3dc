"""graphql-http's GraphQL-over-HTTP audit suite, run through node, for use from pytest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AUDIT_SCRIPT = Path(__file__).resolve().parent / "graphql_http_audit.mjs"


class AuditToolError(RuntimeError):
    """The audit could not run (node or graphql-http missing, or the script failed)."""


def run_graphql_http_audit(url: str, *, timeout: float = 120.0) -> list[dict[str, str]]:
    """Run every graphql-http server audit against ``url``; one ``{id, name, status, reason}`` per audit.

    ``status`` is ``ok``, ``warn``, ``error`` or ``notice`` (see ``graphql_http_audit.mjs``).
    """
    node = shutil.which("node")
    if node is None:
        raise AuditToolError("node is not on PATH (install Node.js 18+)")
    if not (REPO / "node_modules" / "graphql-http" / "package.json").is_file():
        raise AuditToolError(f"graphql-http is not installed in {REPO / 'node_modules'}: run `make install`")
    completed = subprocess.run(
        [node, str(AUDIT_SCRIPT), url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise AuditToolError(f"audit script exited with {completed.returncode}:\n{completed.stderr}")
    results = json.loads(completed.stdout)
    if not isinstance(results, list):
        raise AuditToolError(f"audit script printed {type(results).__name__}, not a list")
    return [{key: str(value) for key, value in result.items()} for result in results]


def problems(results: list[dict[str, str]]) -> list[dict[str, str]]:
    """The audits that did not pass cleanly (anything but ``ok``)."""
    return [result for result in results if result["status"] != "ok"]


__all__ = ["AuditToolError", "problems", "run_graphql_http_audit"]
