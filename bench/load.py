"""The load generator: a process of its own (aiohttp), driven by the orchestrator over stdin/stdout.

    python -m bench.load        # reads one JSON spec per line, answers one JSON result per line

A spec names the requests (used round-robin), how many connections send them (each connection is a worker that
sends its next request when the previous answer is in: a closed loop), for how long or how many, a warm-up at the
same concurrency, and what a correct answer looks like. Every answer is checked while measuring: status, valid JSON,
no GraphQL ``errors``, and the expected number of items at a path. The first wrong answer ends the measurement with
``{"error": ...}``: a benchmark that counts errors as answers measures nothing.

Latency is the time from sending a request to having its whole body; checking happens after the clock stops.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp


class WrongAnswer(Exception):
    pass


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def _at(value: Any, path: Sequence[str | int]) -> Any:
    for step in path:
        found = (isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value)) or (
            isinstance(step, str) and isinstance(value, dict) and step in value
        )
        if not found:
            raise WrongAnswer(f"no {step!r} in {json.dumps(value)[:300]}")
        value = value[step]
    return value


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(step) for step in path)


def check_answer(status: int, body: bytes, check: dict[str, Any]) -> Any:
    """Raise WrongAnswer unless the answer is right; return the parsed body.

    ``check``: ``status`` (default 200) and ``asserts``, each ``{"path": [...]}`` with ``length`` (items of the list
    or object there; ``non_null``: none of them null) or ``equals`` (the value there).
    """
    expected_status = int(check.get("status", 200))
    if status != expected_status:
        raise WrongAnswer(f"status {status} instead of {expected_status}: {body[:300]!r}")
    try:
        parsed: Any = json.loads(body)
    except ValueError as exc:
        raise WrongAnswer(f"not JSON ({exc}): {body[:300]!r}") from exc
    if isinstance(parsed, dict) and parsed.get("errors"):
        raise WrongAnswer(f"GraphQL errors: {json.dumps(parsed['errors'])[:300]}")
    for rule in check.get("asserts", ()):
        path = rule.get("path", ())
        value = _at(parsed, path)
        if "length" in rule:
            if not isinstance(value, list | dict) or len(value) != int(rule["length"]):
                size = len(value) if isinstance(value, list | dict) else type(value).__name__
                raise WrongAnswer(f"{size} items at {_dotted(path)} instead of {rule['length']}")
            items = value.values() if isinstance(value, dict) else value
            if rule.get("non_null") and any(item is None for item in items):
                raise WrongAnswer(f"a null item at {_dotted(path)}")
        if "equals" in rule and value != rule["equals"]:
            raise WrongAnswer(f"{_dotted(path)} = {json.dumps(value)[:200]} instead of {rule['equals']!r}")
    return parsed


async def _run(
    session: aiohttp.ClientSession, spec: dict[str, Any], *, duration: float | None, count: int | None
) -> list[float]:
    requests: list[dict[str, Any]] = spec["requests"]
    check: dict[str, Any] = spec.get("check", {})
    latencies: list[float] = []
    issued = 0
    stop_at = time.perf_counter() + duration if duration is not None else float("inf")
    start_gate = asyncio.Event()

    async def worker() -> None:
        nonlocal issued
        await start_gate.wait()
        while time.perf_counter() < stop_at:
            if count is not None and issued >= count:
                return
            index = issued
            issued += 1
            request = requests[index % len(requests)]
            body = request.get("body")
            started = time.perf_counter()
            async with session.request(
                request.get("method", "GET"),
                request["url"],
                data=body.encode() if isinstance(body, str) else None,
                headers=request.get("headers"),
            ) as response:
                payload = await response.read()
                status = response.status
            latencies.append(time.perf_counter() - started)
            check_answer(status, payload, check)

    workers = [asyncio.create_task(worker()) for _ in range(int(spec.get("connections", 1)))]
    start_gate.set()
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return latencies


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    connections = int(spec.get("connections", 1))
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout", 60)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warmup = spec.get("warmup")
        if warmup:
            await _run(session, spec, duration=float(warmup), count=None)
        started = time.perf_counter()
        latencies = await _run(
            session,
            spec,
            duration=None if spec.get("duration") is None else float(spec["duration"]),
            count=None if spec.get("count") is None else int(spec["count"]),
        )
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    summary: dict[str, Any] = {
        "count": len(ordered),
        "elapsed": elapsed,
        "rps": len(ordered) / elapsed if elapsed > 0 else float("nan"),
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p90_ms": percentile(ordered, 0.90) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
        "mean_ms": (sum(ordered) / len(ordered) if ordered else float("nan")) * 1000,
    }
    if spec.get("raw"):
        summary["latencies_ms"] = [value * 1000 for value in latencies]
    return summary


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        try:
            result = asyncio.run(measure(spec))
        except WrongAnswer as exc:
            result = {"error": f"wrong answer: {exc}"}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
