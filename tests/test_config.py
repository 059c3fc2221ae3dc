"""Settings come from the environment, validated once at start; the README lists every variable."""

from __future__ import annotations

import re

import pytest

from gateway.config import VARIABLES, SettingsError, load_settings
from tests.servers import REPO


def test_defaults_start_the_embedded_engine_with_anonymous_access() -> None:
    settings = load_settings({})
    assert settings.embedded
    assert settings.allow_anonymous
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


def test_a_real_engine_needs_tokens_unless_told_otherwise() -> None:
    settings = load_settings({"PROCESSCUBE_ENGINE_URL": "http://localhost:8000/"})
    assert settings.engine_url == "http://localhost:8000"
    assert not settings.allow_anonymous


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT='eighty' is not valid: expected a port number"),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT"),
        ({"PROCESSCUBE_ENGINE_URL": "localhost:8000"}, "expected an http(s) URL"),
        ({"PROCESSCUBE_CLIENT_ID": "gateway"}, "go together"),
        ({"GATEWAY_ALLOW_ANONYMOUS": "maybe"}, "true or false"),
        ({"GATEWAY_CACHE_TTL_SECONDS": "-1"}, "GATEWAY_CACHE_TTL_SECONDS"),
        ({"GATEWAY_DEFAULT_PAGE_SIZE": "500"}, "must not exceed GATEWAY_MAX_PAGE_SIZE"),
        ({"GATEWAY_LOG_LEVEL": "loud"}, "GATEWAY_LOG_LEVEL"),
        ({"GATEWAY_CURSOR_SECRET": "short"}, "too short"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(env)


def test_the_readme_lists_every_variable_and_no_other() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert listed == set(VARIABLES)


def test_the_code_reads_exactly_the_documented_variables() -> None:
    source = (REPO / "gateway" / "config.py").read_text(encoding="utf-8")
    read = set(re.findall(r'"((?:GATEWAY|PROCESSCUBE)_[A-Z_]+)"', source.split("def load_settings", 1)[1]))
    assert read == set(VARIABLES)


def test_the_operations_guide_places_every_variable() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:GATEWAY|PROCESSCUBE)_[A-Z_]+)`", guide.split("## Settings", 1)[1]))
    assert named == set(VARIABLES)


def test_anonymous_callers_are_never_root_unless_said_loudly() -> None:
    assert load_settings({}).allow_anonymous  # the embedded engine: anonymous callers may read the schema
    assert not load_settings({}).unsafe_anonymous_root
    assert load_settings({"GATEWAY_UNSAFE_ANONYMOUS_ROOT": "true"}).unsafe_anonymous_root
    with pytest.raises(SettingsError, match="GATEWAY_UNSAFE_ANONYMOUS_ROOT needs GATEWAY_ALLOW_ANONYMOUS"):
        load_settings({"PROCESSCUBE_ENGINE_URL": "http://engine:8000", "GATEWAY_UNSAFE_ANONYMOUS_ROOT": "true"})
