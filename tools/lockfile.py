"""Keep the lock files in `requirements/` in step with `pyproject.toml`.

The locks are hashed requirement files (`uv pip compile --generate-hashes --universal`): exact versions and
hashes for every platform, no index addresses, installable by plain pip (`--require-hashes`) or by uv. Each carries
a digest of the dependency lists it was compiled from, so a change to `pyproject.toml` that was not followed by
`make lock` is caught before anything is installed or tested:

    python tools/lockfile.py check   # exit 1 with the reason when pyproject.toml and a lock disagree
    python tools/lockfile.py stamp   # after compiling: record the digest in every lock

Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCKS = {
    # lock file -> the inputs it is compiled from (the extras of pyproject and extra .in files)
    "requirements/runtime.txt": {"extras": [], "inputs": []},
    "requirements/dev.txt": {"extras": ["dev"], "inputs": ["requirements/tools.in"]},
    "requirements/bootstrap.txt": {"extras": None, "inputs": ["requirements/bootstrap.in"]},
}
DIGEST_LINE = re.compile(r"^# inputs-digest: (?P<digest>[0-9a-f]{64})$", re.MULTILINE)
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)", re.MULTILINE)
REQUIREMENT_NAME = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _inputs(lock: str) -> tuple[str, list[str]]:
    """The digest of what the lock was compiled from, and the names it must pin."""
    spec = LOCKS[lock]
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements: list[str] = []
    if spec["extras"] is not None:
        requirements += project["dependencies"]
        for extra in spec["extras"]:
            requirements += project["optional-dependencies"][extra]
    for path in spec["inputs"]:
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                requirements.append(line)
    digest = hashlib.sha256(json.dumps(sorted(requirements)).encode()).hexdigest()
    names = []
    for requirement in requirements:
        match = REQUIREMENT_NAME.match(requirement)
        if match:
            names.append(_normalize(match["name"]))
    return digest, names


def check() -> list[str]:
    problems = []
    for lock in LOCKS:
        path = ROOT / lock
        if not path.exists():
            problems.append(f"{lock} is missing")
            continue
        text = path.read_text()
        digest, names = _inputs(lock)
        recorded = DIGEST_LINE.search(text)
        if recorded is None or recorded["digest"] != digest:
            problems.append(f"{lock} was compiled from other dependencies than pyproject.toml lists now")
        pinned = {_normalize(match["name"]) for match in PIN.finditer(text)}
        missing = sorted(set(names) - pinned)
        if missing:
            problems.append(f"{lock} pins no version of {', '.join(missing)}")
    return problems


def stamp() -> None:
    for lock in LOCKS:
        path = ROOT / lock
        digest, _names = _inputs(lock)
        text = DIGEST_LINE.sub("", path.read_text()).lstrip("\n")
        path.write_text(f"# inputs-digest: {digest}\n{text}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "stamp":
        stamp()
        return 0
    if command == "check":
        problems = check()
        for problem in problems:
            print(f"lock out of date: {problem}; run `make lock`", file=sys.stderr)
        return 1 if problems else 0
    print(f"usage: {argv[0]} check|stamp", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
