"""GraphiQL served from local assets, so the IDE works without internet access.

Strawberry's own GraphiQL page loads React, GraphiQL and the explorer plugin from unpkg. :func:`graphiql_html`
takes that very template (so its features stay: explorer plugin, headers editor, ``?q=`` sharing,
subscriptions over ``graphql-transport-ws`` on the same path, CSRF cookie) and points every CDN asset at the
copy under ``/static/vendor`` that ``make install`` puts there (see :mod:`gateway.assets`).

Use :class:`OfflineGraphQL` instead of :class:`strawberry.asgi.GraphQL` and mount :func:`static_files_mount`::

    app = Starlette(routes=[Mount("/graphql", OfflineGraphQL(schema)), static_files_mount()])
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any, Generic

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.asgi import GraphQL
from strawberry.http.ides import get_graphql_ide_html
from typing_extensions import TypeVar

from ..assets import VENDOR_FILES, static_files_mount

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

DEFAULT_ASSETS_PATH = "/static/vendor"

#: A CDN asset of a pinned npm package: unpkg.com/<package>@<version>/<file> or the jsDelivr equivalent.
_CDN_URL = re.compile(
    r"^https?://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/(?P<package>(?:@[^/@]+/)?[^/@]+)@[^/]+/(?P<file>[^?#]+)$"
)
_SCRIPT_TAG = re.compile(r'<script\b(?P<attrs>(?:[^>"]|"[^"]*")*)>\s*</script>')
_LINK_TAG = re.compile(r'<link\b(?P<attrs>(?:[^>"]|"[^"]*")*)>')
_URL_ATTR = re.compile(r"\b(?:src|href)\s*=\s*\"(?P<url>[^\"]*)\"")
_EXTERNAL_REF = re.compile(r"\b(?:src|href)\s*=\s*\"https?://", re.IGNORECASE)
_FETCH_URL_LINE = 'const fetchURL = window.location.href.split("?")[0];'

_LOCAL_FILES: dict[tuple[str, str], str] = {(item.package, item.source): item.target for item in VENDOR_FILES}


class GraphiQLTemplateError(RuntimeError):
    """Strawberry's GraphiQL template changed in a way this module does not know how to serve offline."""


def _local_url(cdn_url: str, assets_path: str) -> str:
    match = _CDN_URL.match(cdn_url)
    target = _LOCAL_FILES.get((match["package"], match["file"])) if match else None
    if target is None:
        raise GraphiQLTemplateError(
            f"strawberry's GraphiQL template loads {cdn_url}, which is not in gateway.assets.VENDOR_FILES"
        )
    return f"{assets_path.rstrip('/')}/{target}"


def _replace_script(match: re.Match[str], assets_path: str) -> str:
    url = _URL_ATTR.search(match["attrs"])
    if url is None:  # an inline script
        return match[0]
    src = html.escape(_local_url(html.unescape(url["url"]), assets_path), quote=True)
    return f'<script src="{src}"></script>'


def _replace_link(match: re.Match[str], assets_path: str) -> str:
    url = _URL_ATTR.search(match["attrs"])
    if url is None or not _EXTERNAL_REF.search(match[0]):  # e.g. the inline data: favicon
        return match[0]
    href = html.escape(_local_url(html.unescape(url["url"]), assets_path), quote=True)
    return f'<link rel="stylesheet" href="{href}" />'


def _js_string(value: str) -> str:
    """A JavaScript string literal that is also safe inside an inline ``<script>``."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def graphiql_html(*, graphql_path: str | None = "/graphql", assets_path: str = DEFAULT_ASSETS_PATH) -> str:
    """Strawberry's GraphiQL page with every CDN asset replaced by its local copy under ``assets_path``.

    ``graphql_path`` is where GraphiQL sends queries (resolved against the page URL; subscriptions use the
    same URL with ``ws:``/``wss:``); ``None`` keeps strawberry's behaviour of using the page's own URL.
    The ``integrity``/``crossorigin`` attributes go with the CDN URLs: the assets are same-origin.
    """
    page = get_graphql_ide_html(graphql_ide="graphiql")
    page = _SCRIPT_TAG.sub(lambda match: _replace_script(match, assets_path), page)
    page = _LINK_TAG.sub(lambda match: _replace_link(match, assets_path), page)
    if _EXTERNAL_REF.search(page) or "unpkg.com" in page or "jsdelivr" in page:
        raise GraphiQLTemplateError("strawberry's GraphiQL template still references an external URL")
    if graphql_path is not None:
        if _FETCH_URL_LINE not in page:
            raise GraphiQLTemplateError("strawberry's GraphiQL template no longer defines fetchURL as expected")
        page = page.replace(
            _FETCH_URL_LINE,
            f"const fetchURL = new URL({_js_string(graphql_path)}, window.location.href).href;",
        )
    return page


ContextT = TypeVar("ContextT", default=None)
RootValueT = TypeVar("RootValueT", default=None)


class OfflineGraphQL(GraphQL[ContextT, RootValueT], Generic[ContextT, RootValueT]):
    """:class:`strawberry.asgi.GraphQL` whose GraphiQL page loads its assets from ``assets_path``.

    By default GraphiQL talks to the URL it was served from (strawberry's behaviour), which is the GraphQL
    endpoint itself; pass ``graphql_path`` to point it elsewhere. Other keyword arguments go to strawberry.
    Pair it with :func:`gateway.assets.static_files_mount` so that ``assets_path`` is served.
    """

    def __init__(
        self,
        schema: BaseSchema,
        *,
        assets_path: str = DEFAULT_ASSETS_PATH,
        graphql_path: str | None = None,
        **options: Any,
    ) -> None:
        graphql_ide = options.get("graphql_ide", "graphiql")
        if graphql_ide not in ("graphiql", None):
            raise ValueError(f"OfflineGraphQL serves GraphiQL only, not {graphql_ide!r} (use None to disable it)")
        super().__init__(schema, **options)
        self.offline_graphiql_html = graphiql_html(graphql_path=graphql_path, assets_path=assets_path)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self.offline_graphiql_html)


__all__ = ["GraphiQLTemplateError", "OfflineGraphQL", "graphiql_html", "static_files_mount"]
