"""The offline pages and the vendor-asset copy, without a browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import strawberry

from gateway.assets import VENDOR_FILES, MissingAssetsError, copy_vendor_assets, static_files_mount
from gateway.gql.graphiql import OfflineGraphQL, graphiql_html
from gateway.rest.docs import api_docs_html

EXTERNAL_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']https?://""")


def test_graphiql_page_loads_every_asset_from_the_assets_path() -> None:
    page = graphiql_html(assets_path="/assets/v1/")

    assert EXTERNAL_ASSET.search(page) is None
    assert "integrity=" not in page
    assert '<script src="/assets/v1/react/react.production.min.js"></script>' in page
    assert '<link rel="stylesheet" href="/assets/v1/graphiql/graphiql.min.css" />' in page
    assert '<script src="/assets/v1/graphiql-plugin-explorer/index.umd.js"></script>' in page


def test_graphiql_page_sends_queries_to_the_given_path() -> None:
    page = graphiql_html(graphql_path="/api/graphql</script>")

    assert 'new URL("/api/graphql\\u003c/script\\u003e", window.location.href).href' in page
    assert "window.location.href.split" not in page


def test_graphiql_page_keeps_strawberrys_page_url_when_no_path_is_given() -> None:
    assert 'const fetchURL = window.location.href.split("?")[0];' in graphiql_html(graphql_path=None)


def test_offline_graphql_refuses_other_ides() -> None:
    schema = strawberry.Schema(query=_Query)

    with pytest.raises(ValueError, match="apollo-sandbox"):
        OfflineGraphQL(schema, graphql_ide="apollo-sandbox")


def test_api_docs_page_loads_swagger_ui_locally_without_the_online_validator() -> None:
    page = api_docs_html(openapi_url="/api/openapi.json", assets_path="/assets", title="A & B")

    assert EXTERNAL_ASSET.search(page) is None
    assert '<script src="/assets/swagger-ui/swagger-ui-bundle.js"></script>' in page
    assert '"url": "/api/openapi.json"' in page
    assert '"validatorUrl": null' in page
    assert "<title>A &amp; B</title>" in page


def test_copy_vendor_assets_says_run_make_install_without_node_modules(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetsError, match="make install"):
        copy_vendor_assets(tmp_path / "node_modules", tmp_path / "vendor")


def test_copy_vendor_assets_copies_exactly_the_listed_files(tmp_path: Path) -> None:
    node_modules = tmp_path / "node_modules"
    for item in VENDOR_FILES:
        source = node_modules / item.package / item.source
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"{item.package}/{item.source}")
        (node_modules / item.package / "package.json").write_text('{"version": "1.0.0"}')
    vendor = tmp_path / "vendor"

    copy_vendor_assets(node_modules, vendor)

    copied = sorted(str(path.relative_to(vendor)) for path in vendor.rglob("*") if path.is_file())
    assert copied == sorted([*(item.target for item in VENDOR_FILES), "manifest.json"])


def test_static_files_mount_says_run_make_install_without_vendor_files(tmp_path: Path) -> None:
    with pytest.raises(MissingAssetsError, match="make install"):
        static_files_mount(directory=tmp_path)


@strawberry.type
class _Query:
    hello: str = "hi"
