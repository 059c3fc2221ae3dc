"""Vendored browser assets (GraphiQL, API reference), copied from ``node_modules`` at install time.

The assets are never committed and never loaded from a CDN: ``make install`` runs ``npm ci`` (versions
pinned in ``package.json``/``package-lock.json``) and then ``python -m gateway.assets``, which copies exactly
the files the pages need into ``gateway/static/vendor/`` (gitignored). The pages in :mod:`gateway.gql.graphiql`
and :mod:`gateway.rest.docs` reference them under ``/static/vendor/...``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / "node_modules"
STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
MANIFEST_NAME = "manifest.json"


class MissingAssetsError(RuntimeError):
    """The npm packages or the copied vendor files are not there: ``make install`` has not run."""


@dataclass(frozen=True)
class VendorFile:
    """One file of an npm package, served as ``/static/vendor/<target>``."""

    package: str
    source: str
    target: str


def _files(package: str, folder: str, *sources: str) -> tuple[VendorFile, ...]:
    return tuple(VendorFile(package, source, f"{folder}/{Path(source).name}") for source in sources)


#: Exactly what the GraphiQL page (mirroring strawberry's template) and the API reference page load.
VENDOR_FILES: tuple[VendorFile, ...] = (
    *_files("react", "react", "umd/react.production.min.js", "LICENSE"),
    *_files("react-dom", "react-dom", "umd/react-dom.production.min.js", "LICENSE"),
    *_files("js-cookie", "js-cookie", "dist/js.cookie.min.js", "LICENSE"),
    *_files("graphiql", "graphiql", "graphiql.min.js", "graphiql.min.css", "LICENSE"),
    *_files("@graphiql/plugin-explorer", "graphiql-plugin-explorer", "dist/index.umd.js", "dist/style.css"),
    *_files(
        "swagger-ui-dist",
        "swagger-ui",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "LICENSE",
        "NOTICE",
        "swagger-ui-bundle.js.LICENSE.txt",
    ),
)

INSTALL_HINT = "run `make install` (npm ci + python -m gateway.assets)"


def package_version(package: str, node_modules: Path = NODE_MODULES) -> str:
    """The installed version of an npm package, read from its ``package.json``."""
    manifest = node_modules / package / "package.json"
    if not manifest.is_file():
        raise MissingAssetsError(f"npm package {package!r} is not installed in {node_modules}: {INSTALL_HINT}")
    version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    return str(version)


def copy_vendor_assets(node_modules: Path = NODE_MODULES, vendor_dir: Path = VENDOR_DIR) -> list[Path]:
    """Replace ``vendor_dir`` with the files listed in :data:`VENDOR_FILES`; return the copied paths.

    Writes ``manifest.json`` (package versions and file list) next to them.
    """
    if not node_modules.is_dir():
        raise MissingAssetsError(f"{node_modules} does not exist: {INSTALL_HINT}")
    missing = [
        f"{item.package}/{item.source}"
        for item in VENDOR_FILES
        if not (node_modules / item.package / item.source).is_file()
    ]
    if missing:
        raise MissingAssetsError(f"files missing in {node_modules}: {', '.join(missing)}; {INSTALL_HINT}")
    versions = {item.package: package_version(item.package, node_modules) for item in VENDOR_FILES}
    if vendor_dir.exists():
        shutil.rmtree(vendor_dir)
    copied: list[Path] = []
    for item in VENDOR_FILES:
        target = vendor_dir / item.target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(node_modules / item.package / item.source, target)
        copied.append(target)
    manifest = {"packages": versions, "files": [item.target for item in VENDOR_FILES]}
    (vendor_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return copied


def missing_vendor_files(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """The vendor files (relative to ``vendor_dir``) that are not there."""
    return [item.target for item in VENDOR_FILES if not (vendor_dir / item.target).is_file()]


def require_vendor_assets(vendor_dir: Path = VENDOR_DIR) -> None:
    """Raise :class:`MissingAssetsError` naming the missing files unless every vendor file is present."""
    missing = missing_vendor_files(vendor_dir)
    if missing:
        raise MissingAssetsError(f"browser assets missing in {vendor_dir} ({', '.join(missing)}): {INSTALL_HINT}")


def static_files_mount(path: str = "/static", *, name: str = "static", directory: Path = STATIC_DIR) -> Mount:
    """A starlette ``Mount`` serving ``directory`` (``gateway/static``), so the vendor files are at
    ``{path}/vendor/...``; raises :class:`MissingAssetsError` right away if they have not been installed."""
    require_vendor_assets(directory / "vendor")
    return Mount(path, app=StaticFiles(directory=directory), name=name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.assets", description="Copy GraphiQL/API-reference assets from node_modules."
    )
    parser.add_argument("--node-modules", type=Path, default=NODE_MODULES)
    parser.add_argument("--vendor-dir", type=Path, default=VENDOR_DIR)
    args = parser.parse_args(argv)
    try:
        copied = copy_vendor_assets(args.node_modules, args.vendor_dir)
    except MissingAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in copied)
    print(f"copied {len(copied)} files ({size / 1_000_000:.1f} MB) into {args.vendor_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
