"""schema/schema.graphql is the committed contract; it must be exactly what the code serves."""

from __future__ import annotations

from gateway.gql.export import SDL_FILE, sdl


def test_committed_sdl_matches_the_code() -> None:
    assert SDL_FILE.read_text(encoding="utf-8") == sdl(), "run `python -m gateway.gql.export` and commit the SDL"
