"""Starting the embedded engine for the gateway when no PROCESSCUBE_ENGINE_URL is configured.

The engine runs in its own process and the gateway reaches it over HTTP on loopback, exactly as it reaches a real
ProcessCube engine: switching to a real engine changes the URL and the credentials, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from pathlib import Path

import httpx

from .config import SettingsError


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedEngine:
    def __init__(self, *, port: int, data_dir: Path, demo: bool, log_level: str = "warning") -> None:
        self.port = port or _free_port()
        self.data_dir = data_dir
        self.demo = demo
        self.log_level = log_level
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, startup_seconds: float = 30.0) -> str:
        if not _port_is_free(self.port):
            raise SettingsError(
                f"Port {self.port} is taken, so the embedded engine cannot start there. Stop what uses it, set"
                " GATEWAY_EMBEDDED_ENGINE_PORT to another port (0: any free one), or point PROCESSCUBE_ENGINE_URL"
                " at a running engine."
            )
        args = [
            "-m",
            "embedded_engine",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            self.log_level,
            "--exit-with-parent",
        ]
        if self.demo:
            args.append("--demo")
        self._process = await asyncio.create_subprocess_exec(sys.executable, *args)
        deadline = time.monotonic() + startup_seconds
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if self._process.returncode is not None:
                    raise RuntimeError(f"The embedded engine exited with code {self._process.returncode}.")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.url + "/atlas_engine/api/v1/info")).status_code == 200:
                        return self.url
                await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"The embedded engine did not answer within {startup_seconds} seconds.")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
