"""The REST API reference page (Swagger UI), served from local assets so it works without internet access.

Swagger UI comes from the ``swagger-ui-dist`` npm package, copied into ``/static/vendor/swagger-ui/`` by
``make install`` (see :mod:`gateway.assets`): one self-contained JS bundle plus one stylesheet, no fonts or
scripts fetched from a CDN. The online spec validator badge is switched off (it calls validator.swagger.io).
"""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

DEFAULT_ASSETS_PATH = "/static/vendor"
DEFAULT_TITLE = "ProcessCube Task Gateway API"

# An inline icon, so that browsers do not ask for /favicon.ico (a 404 shows up as a console error).
_FAVICON = (
    "data:image/svg+xml,<svg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 100 100%22>"
    "<text y=%22.9em%22 font-size=%2280%22>%F0%9F%93%98</text></svg>"
)

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>{title}</title>
    <link rel="icon" href="{favicon}" />
    <link rel="stylesheet" href="{assets}/swagger-ui/swagger-ui.css" />
    <style>
      body {{ margin: 0; }}
    </style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{assets}/swagger-ui/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({config});
    </script>
  </body>
</html>
"""


def _js_value(value: object) -> str:
    """JSON that is also safe inside an inline ``<script>``."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def api_docs_html(
    *,
    openapi_url: str = "/openapi.json",
    assets_path: str = DEFAULT_ASSETS_PATH,
    title: str = DEFAULT_TITLE,
) -> str:
    """A Swagger UI page for the OpenAPI document at ``openapi_url``, with assets under ``assets_path``."""
    config = _js_value(
        {
            "url": openapi_url,
            "dom_id": "#swagger-ui",
            "deepLinking": True,
            "validatorUrl": None,
            "queryConfigEnabled": False,
            "displayRequestDuration": True,
        }
    )
    # Swagger UI's "apis" preset is the bare UI (no top bar asking for a spec URL); spliced in as code.
    config = config[:-1] + ', "presets": [SwaggerUIBundle.presets.apis], "layout": "BaseLayout"}'
    return _PAGE.format(
        title=html.escape(title),
        favicon=html.escape(_FAVICON, quote=True),
        assets=html.escape(assets_path.rstrip("/"), quote=True),
        config=config,
    )


def api_docs_route(
    path: str = "/docs",
    *,
    openapi_url: str = "/openapi.json",
    assets_path: str = DEFAULT_ASSETS_PATH,
    title: str = DEFAULT_TITLE,
) -> Route:
    """A starlette ``Route`` serving :func:`api_docs_html` at ``path`` (GET only)."""
    page = api_docs_html(openapi_url=openapi_url, assets_path=assets_path, title=title)

    async def api_docs(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    return Route(path, api_docs, methods=["GET"], name="api_docs")


__all__ = ["api_docs_html", "api_docs_route"]
