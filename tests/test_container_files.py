"""Cheap static checks of the container files (the image itself is tested by `make docker-test`, too slow here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from gateway.config import VARIABLES

REPO = Path(__file__).resolve().parents[1]


def instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuations joined, comments dropped); with ``stage=""``, the last stage's."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", joined, re.M)]
    if stage == "":
        last_from = max(i for i, (name, _) in enumerate(parsed) if name == "FROM")
        return parsed[last_from:]
    return parsed


def test_dockerfile_base_image_is_a_build_arg() -> None:
    parsed = instructions()
    assert parsed[0] == ("ARG", "BASE_IMAGE=debian:bookworm-slim")
    assert [args for name, args in parsed if name == "FROM"][-1] == "${BASE_IMAGE}"


def test_final_stage_is_non_root_with_healthcheck_and_exec_form_cmd() -> None:
    final = dict(instructions(stage=""))  # last one wins, as in Docker
    user = final["USER"].split(":")[0]
    assert user not in ("0", "root", "")
    assert final["HEALTHCHECK"].split("CMD", 1)[1].strip().startswith("[")
    health = json.loads(final["HEALTHCHECK"].split("CMD", 1)[1])
    assert health[:2] == ["python", "-c"]
    assert "/livez" in health[2]
    assert "GATEWAY_PORT" in health[2]
    assert json.loads(final["CMD"]) == ["python", "-m", "gateway"]
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert final["VOLUME"] == "/data"
    assert "ENTRYPOINT" not in final  # nothing (a shell) between docker stop's SIGTERM and the gateway


def test_final_stage_environment_names_real_settings() -> None:
    env = " ".join(args for name, args in instructions(stage="") if name == "ENV")
    settings = dict(re.findall(r"\b((?:GATEWAY|PROCESSCUBE)_\w+)=(\S+)", env))
    assert settings == {
        "GATEWAY_HOST": "0.0.0.0",
        "GATEWAY_PORT": "8080",
        "GATEWAY_EMBEDDED_ENGINE_DATA_DIR": "/data/engine",
        "GATEWAY_EMBEDDED_ENGINE_DEMO": "true",
        "GATEWAY_LOG_FORMAT": "json",
    }
    assert set(settings) <= set(VARIABLES)


def test_dependencies_are_installed_with_hashes_and_the_ca_stays_a_secret() -> None:
    runs = [args for name, args in instructions() if name == "RUN"]
    assert any("--require-hashes" in run and "requirements/runtime.txt" in run for run in runs)
    assert any("npm ci" in run for run in runs)
    assert any("python -m gateway.assets" in run for run in runs)
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "ca-certificates.crt" not in re.sub(r"^#.*$", "", text, flags=re.M)  # never COPYed or ADDed in


def test_compose_runs_two_gateways_sharing_redis_and_cursor_secret() -> None:
    compose: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    gateways = {
        name: service["environment"]
        for name, service in services.items()
        if "PROCESSCUBE_ENGINE_URL" in service.get("environment", {})
    }
    assert len(gateways) == 2
    first, second = gateways.values()
    for key in ("GATEWAY_REDIS_URL", "GATEWAY_CURSOR_SECRET", "PROCESSCUBE_ENGINE_URL"):
        assert first[key] == second[key]
        assert key in VARIABLES
    assert first["GATEWAY_REDIS_URL"].startswith("redis://redis:")
    assert first["PROCESSCUBE_ENGINE_URL"] == "http://engine:56100"
    assert "redis" in services
    engine = services["engine"]["command"]
    assert engine[:3] == ["python", "-m", "embedded_engine"]
    assert engine[engine.index("--port") + 1] == "56100"
    assert "--demo" in engine


def test_docker_test_is_a_make_target_but_not_part_of_make_test() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^docker-test:", makefile, re.M)
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M)
    test = re.search(r"^test:(.*)$", makefile, re.M)
    assert phony is not None
    assert "docker-test" in phony[1].split()
    assert test is not None
    assert "docker" not in test[1]
