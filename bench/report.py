"""The one table ``make bench`` prints, and the machine it ran on."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PASS = "PASS"
MISS = "MISS"


@dataclass(frozen=True)
class Row:
    figure: str
    measurement: str
    value: str
    target: str = ""
    verdict: str = ""


def verdict(ok: bool) -> str:
    return PASS if ok else MISS


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def render(rows: list[Row]) -> str:
    header = Row("#", "measurement", "value", "target", "result")
    widths = [
        max(len(getattr(row, name)) for row in [header, *rows])
        for name in ("figure", "measurement", "value", "target", "verdict")
    ]

    def line(row: Row) -> str:
        cells = [row.figure, row.measurement, row.value, row.target, row.verdict]
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            cpu = found.group(1).strip()
    return (
        f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def load_average() -> str:
    """The 1-minute load average: the benchmark shares the machine with whatever else runs on it."""
    path = Path("/proc/loadavg")
    return path.read_text().split()[0] if path.exists() else "?"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


README = Path(__file__).with_name("README.md")


def update_readme(text: str, section: str) -> None:
    """Put ``text`` between ``<!-- {section}:begin -->`` and ``<!-- {section}:end -->`` in bench/README.md."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    content = README.read_text(encoding="utf-8")
    if begin not in content or end not in content:
        raise SystemExit(f"{README} has no {begin} ... {end} section")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{begin}\n{text}\n{end}{tail}", encoding="utf-8")
