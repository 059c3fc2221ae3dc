"""Debian chromium driven through Playwright's sync API, recording what the page does on the network.

Playwright's own browser downloads are blocked here, so this always uses ``/usr/bin/chromium``
(``apt-get install chromium``; ``.ci/run`` installs it). Without it the tests skip, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, WebSocket, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass
class PageActivity:
    """What a page asked for and complained about, collected from Playwright's page events."""

    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def urls_outside(self, origin: str) -> list[str]:
        """Requested URLs (HTTP and WebSocket) that do not belong to ``origin`` (``http://host:port``).

        ``data:`` URLs (inline icons and fonts) are not network requests and are ignored.
        """
        ws_origin = "ws" + origin.removeprefix("http")
        outside = [url for url in self.requests if not _same_origin(url, origin) and not url.startswith("data:")]
        return outside + [url for url in self.websockets if not _same_origin(url, ws_origin)]

    def errors(self) -> list[str]:
        return self.console_errors + self.page_errors


def _same_origin(url: str, origin: str) -> bool:
    return url == origin or url.startswith(origin + "/")


def require_chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y --no-install-recommends chromium` (CI does)")
    return CHROMIUM


@contextmanager
def chromium_page() -> Iterator[tuple[Page, PageActivity]]:
    """A fresh page in headless Debian chromium and the record of its activity; the browser always closes."""
    executable = require_chromium()
    activity = PageActivity()

    def on_request(request: Request) -> None:
        activity.requests.append(request.url)

    def on_websocket(websocket: WebSocket) -> None:
        activity.websockets.append(websocket.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            activity.console_errors.append(f"{message.text} ({message.location})")

    def on_page_error(error: Exception) -> None:
        activity.page_errors.append(str(error))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", on_request)
            page.on("websocket", on_websocket)
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            yield page, activity
        finally:
            browser.close()
