"""``python -m gateway.gql.export``: write the SDL to schema/schema.graphql (a test fails when it drifts)."""

from __future__ import annotations

import sys
from pathlib import Path

from .schema import default_schema

SDL_FILE = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


def sdl() -> str:
    return default_schema().as_str() + "\n"


def main() -> int:
    SDL_FILE.parent.mkdir(exist_ok=True)
    SDL_FILE.write_text(sdl(), encoding="utf-8")
    print(f"wrote {SDL_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
