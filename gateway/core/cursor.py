"""Opaque, tamper-proof page cursors.

A cursor names a position by the sort key of the last task seen (plus its id), not by an offset, so a page
after it neither skips nor repeats a task when tasks before it come or go. The offset it also carries is only a
hint that tells where to start looking. The payload is signed (HMAC-SHA256) and bound to the query it came from:
an edited cursor, or one used with another filter or sort, is refused with a clear error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

_VERSION = 1


@dataclass(frozen=True)
class CursorPosition:
    key: tuple[Any, ...]
    position: int


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]

    def encode(self, fingerprint: str, key: tuple[Any, ...], position: int) -> str:
        payload = json.dumps([_VERSION, fingerprint, list(key), position], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload + self._sign(payload)).decode().rstrip("=")

    def decode(self, cursor: str, fingerprint: str) -> CursorPosition:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("The cursor is not one this gateway issued.") from exc
        payload, signature = raw[:-12], raw[-12:]
        if len(raw) <= 12 or not hmac.compare_digest(signature, self._sign(payload)):
            raise BadRequest("The cursor is not one this gateway issued (or it was altered).")
        version, cursor_fingerprint, key, position = json.loads(payload)
        if version != _VERSION:
            raise BadRequest("The cursor comes from another version of the gateway; start from the first page.")
        if cursor_fingerprint != fingerprint:
            raise BadRequest("The cursor belongs to another filter or sort; start from the first page.")
        return CursorPosition(tuple(key), int(position))


def query_fingerprint(*parts: Any) -> str:
    """What a cursor is bound to: a short digest of the listing's filter and sort."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
