"""Shared by the Python drivers: the step recorder and polling (standard library and the official client only).

A driver prints one line of JSON, ``{"steps": {name: {"ok": value} | {"error": {...}}}}``; a failed step ends the
scenario. The drivers run in their own process (``.venv/bin/python drivers/x.py``), never inside pytest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENGINE_URL = os.environ["ENGINE_URL"]
MODELS_DIR = Path(os.environ["MODELS_DIR"])
SHARED_PROCESSES = Path(os.environ.get("SHARED_PROCESSES", "/nonexistent"))

steps: dict[str, Any] = {}


class StepFailed(Exception):
    pass


def describe(exc: BaseException) -> dict[str, Any]:
    """The engine's answer as the official client reports it (requests and aiohttp keep the status)."""
    info: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)[:2000]}
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "status_code"):  # requests.HTTPError
        info["status"] = response.status_code
        info["body"] = response.text[:2000]
        info["request"] = f"{response.request.method} {response.request.url}"
    status = getattr(exc, "status", None)
    if isinstance(status, int):  # aiohttp.ClientResponseError
        info["status"] = status
        request_info = getattr(exc, "request_info", None)
        if request_info is not None:
            info["request"] = f"{request_info.method} {request_info.url}"
    return info


def jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def step(name: str, fn: Callable[[], Any], *, fatal: bool = True) -> Any:
    """Run one step and record its value; a failure is recorded and, when ``fatal``, ends the scenario."""
    try:
        value = fn()
    except Exception as exc:
        steps[name] = {"error": describe(exc)}
        if fatal:
            raise StepFailed(name) from exc
        return None
    steps[name] = {"ok": jsonable(value)}
    return value


def until(what: str, probe: Callable[[], Any], accept: Callable[[Any], bool], seconds: float = 10.0) -> Any:
    """Call ``probe()`` until ``accept(value)``; a bound on waiting, never a timing check."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {seconds} s waiting for {what}; last answer: {jsonable(value)}"[:2000])
        time.sleep(0.1)


def run(main: Callable[[], None]) -> None:
    try:
        main()
    except StepFailed:
        pass
    except Exception as exc:
        steps["_driver"] = {"error": describe(exc)}
    sys.stdout.write(json.dumps({"steps": steps}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # the client's event loop and worker threads must not keep the process alive


def deploy(client: Any, process_model_id: str, name: str = "deploy") -> None:
    """Step ``name``: upload ``models/<process_model_id>.bpmn`` with the official Client (overwriting)."""
    from processcube_client.core.api import ProcessDefinitionUploadPayload

    xml = (MODELS_DIR / f"{process_model_id}.bpmn").read_text(encoding="utf-8")
    step(
        name, lambda: client.process_definition_upload(ProcessDefinitionUploadPayload(xml=xml, overwrite_existing=True))
    )


def start(client: Any, process_model_id: str, initial_token: Any, name: str = "start") -> str:
    """Step ``name``: start an instance with the official Client (returnOn: created); its process instance id."""
    from processcube_client.core.api import ProcessStartRequest, StartCallbackType

    request = ProcessStartRequest(
        process_model_id=process_model_id,
        return_on=StartCallbackType.CallbackOnProcessInstanceCreated,
        initial_token=initial_token,
    )
    started = step(name, lambda: client.process_model_start(process_model_id, request))
    return str(started.process_instance_id)


def wait_for_end(client: Any, process_instance_id: str) -> None:
    """Step ``instance``: wait until the instance has ended (finished, failed or terminated); it is the step's value."""
    from processcube_client.core.api import ProcessInstanceQueryRequest

    step(
        "instance",
        lambda: until(
            "the instance to finish",
            lambda: client.process_instance_query(
                ProcessInstanceQueryRequest(process_instance_id=process_instance_id, limit=10)
            ),
            lambda found: bool(found) and found[0].state in ("finished", "error", "terminated"),
        )[0],
    )
