"""The REST contract, ``openapi/openapi.yaml`` (written by hand), served as is and as JSON, plus the /docs page.

``/openapi.yaml`` answers the file's bytes unchanged; ``/openapi.json`` the same document as JSON. The file is
read and parsed once, on the first request (YAML timestamps stay strings, so the JSON is the YAML's data).
The API reference page at ``/docs`` is Swagger UI from local assets (:mod:`gateway.rest.docs`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from starlette.routing import BaseRoute

from .docs import api_docs_route
from .resource import Answer, Call, Operation, Resource

OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
YAML = "application/yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: dates in examples stay the strings JSON needs."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(path: Path = OPENAPI_FILE) -> Any:
    return yaml.load(path.read_bytes(), Loader=_Loader)


@functools.cache
def _served(path: Path) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    document = load_document(path)
    return raw, json.dumps(document, ensure_ascii=False, indent=2).encode()


def openapi_routes(path: Path = OPENAPI_FILE) -> list[BaseRoute]:
    async def as_yaml(call: Call) -> Answer:
        return Answer(200, _served(path)[0], YAML)

    async def as_json(call: Call) -> Answer:
        return Answer(200, _served(path)[1])

    return [
        Resource(
            "/openapi.json",
            {"GET": Operation(as_json)},
            name="openapi_json",
            authenticate=False,
        ),
        Resource(
            "/openapi.yaml",
            {"GET": Operation(as_yaml)},
            name="openapi_yaml",
            media_types=(YAML, "application/problem+json"),
            authenticate=False,
        ),
        api_docs_route("/docs", openapi_url="/openapi.json"),
    ]
