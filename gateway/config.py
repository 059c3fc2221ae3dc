"""Settings: one frozen object, read from the environment once at start and validated with clear messages.

Every variable is listed in the README (section "Configuration"); :data:`VARIABLES` is the same list, and a test
keeps the two in step.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .core.domain import DEFAULT_PAGE_SIZE

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what it expects."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    engine_url: str | None = None
    authority_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    allow_anonymous: bool = True
    unsafe_anonymous_root: bool = False
    jwt_audience: str | None = None
    jwt_leeway_seconds: float = 30.0
    embedded_engine_port: int = 56100
    embedded_engine_data_dir: Path = Path(".data/engine")
    embedded_engine_demo: bool = False
    engine_timeout_seconds: float = 10.0
    cache_ttl_seconds: float = 2.0
    cache_max_entries: int = 10_000
    cache_max_bytes: int = 67_108_864
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = 100
    max_batch_size: int = 100
    batch_concurrency: int = 16
    residual_scan_limit: int = 10_000
    max_body_bytes: int = 1_048_576
    max_query_depth: int = 12
    max_aliases: int = 64
    max_query_tokens: int = 2_000
    max_query_cost: int = 50_000
    replay_buffer: int = 10_000
    subscription_queue: int = 256
    subscriptions_per_caller: int = 100
    subscriptions_per_connection: int = 20
    max_subscriptions: int = 10_000
    live_list_interval_ms: int = 100
    sse_heartbeat_seconds: float = 15.0
    cursor_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    cursor_secret_configured: bool = False  # GATEWAY_CURSOR_SECRET given (else: random, or shared through Redis)
    log_level: str = "info"
    log_format: str = "json"
    redis_url: str | None = field(default=None, repr=False)  # may carry a password
    idempotency_ttl_seconds: float = 86_400.0
    shutdown_grace_seconds: int = 10
    header_timeout_seconds: float = 10.0
    max_connections: int = 1_000

    @property
    def embedded(self) -> bool:
        return self.engine_url is None


# name -> (help text, default shown in the README)
VARIABLES: dict[str, str] = {
    "GATEWAY_HOST": "interface to listen on (127.0.0.1)",
    "GATEWAY_PORT": "port to listen on (8080)",
    "PROCESSCUBE_ENGINE_URL": "engine root URL, e.g. http://localhost:8000; unset: start the embedded engine",
    "PROCESSCUBE_AUTHORITY_URL": "authority URL; unset: asked from the engine (GET /atlas_engine/api/v1/authority)",
    "PROCESSCUBE_CLIENT_ID": "the gateway's own OAuth client id (with PROCESSCUBE_CLIENT_SECRET)",
    "PROCESSCUBE_CLIENT_SECRET": "the gateway's own OAuth client secret",
    "GATEWAY_ALLOW_ANONYMOUS": "accept requests without a token (true with the embedded engine, else false); they"
    " may read the schema and the docs, not the engine's tasks",
    "GATEWAY_UNSAFE_ANONYMOUS_ROOT": "requests without a token act on the engine as its anonymous ROOT user: every"
    " task of every lane (false; `make run` sets true for the demo). Never in production",
    "GATEWAY_JWT_AUDIENCE": "required `aud` of callers' tokens (unset: not checked)",
    "GATEWAY_JWT_LEEWAY_SECONDS": "clock skew allowed on `exp`; live subscriptions end at `exp` plus this (30)",
    "GATEWAY_EMBEDDED_ENGINE_PORT": "port of the embedded engine (56100)",
    "GATEWAY_EMBEDDED_ENGINE_DATA_DIR": "data directory of the embedded engine (.data/engine)",
    "GATEWAY_EMBEDDED_ENGINE_DEMO": "deploy the example models and start demo instances (false)",
    "GATEWAY_ENGINE_TIMEOUT_SECONDS": "timeout of one engine call (10)",
    "GATEWAY_CACHE_TTL_SECONDS": "how long reads are cached; 0 turns the cache off (2)",
    "GATEWAY_CACHE_MAX_ENTRIES": "cache size (10000)",
    "GATEWAY_CACHE_MAX_BYTES": "cache size in bytes, estimated; a value over half of it is not cached (67108864)",
    "GATEWAY_DEFAULT_PAGE_SIZE": f"page size when `first`/`limit` is not given ({DEFAULT_PAGE_SIZE})",
    "GATEWAY_MAX_PAGE_SIZE": "largest page (100)",
    "GATEWAY_MAX_BATCH_SIZE": "most items in one batch mutation (100)",
    "GATEWAY_BATCH_CONCURRENCY": "batch items sent to the engine at once (16)",
    "GATEWAY_RESIDUAL_SCAN_LIMIT": "most candidate tasks the gateway filters itself for one query (10000)",
    "GATEWAY_MAX_BODY_BYTES": "largest request body (1048576)",
    "GATEWAY_MAX_QUERY_DEPTH": "deepest GraphQL selection (12)",
    "GATEWAY_MAX_ALIASES": "most aliases in one GraphQL document (64)",
    "GATEWAY_MAX_QUERY_TOKENS": "most tokens in one GraphQL document (2000)",
    "GATEWAY_MAX_QUERY_COST": "budget of one GraphQL operation, priced before it runs (50000)",
    "GATEWAY_REPLAY_BUFFER": "engine changes kept for resuming live streams and the change feed (10000)",
    "GATEWAY_SUBSCRIPTION_QUEUE": "messages a live subscriber may fall behind before it is ended (256)",
    "GATEWAY_SUBSCRIPTIONS_PER_CALLER": "live subscriptions one caller may hold at once (100)",
    "GATEWAY_SUBSCRIPTIONS_PER_CONNECTION": "GraphQL subscriptions on one WebSocket connection (20)",
    "GATEWAY_MAX_SUBSCRIPTIONS": "live subscriptions of this gateway process in all (10000)",
    "GATEWAY_LIVE_LIST_INTERVAL_MS": "least time between two updates of one live list (100)",
    "GATEWAY_SSE_HEARTBEAT_SECONDS": "comment line sent on an idle server-sent event stream (15)",
    "GATEWAY_CURSOR_SECRET": "key that signs page cursors; unset: shared through Redis, or random per process",
    "GATEWAY_LOG_LEVEL": "debug, info, warning or error (info)",
    "GATEWAY_LOG_FORMAT": "json (one JSON object a line) or text (for people; `make run` uses it) (json)",
    "GATEWAY_REDIS_URL": "redis:// or rediss:// URL shared by all instances: idempotency records (unset: in-process)",
    "GATEWAY_IDEMPOTENCY_TTL_SECONDS": "how long an Idempotency-Key's answer is kept for replays (86400)",
    "GATEWAY_SHUTDOWN_GRACE_SECONDS": "on SIGTERM, how long requests in flight may take to finish (10)",
    "GATEWAY_HEADER_TIMEOUT_SECONDS": "a request's headers (and each pause in its body) must arrive within this (10)",
    "GATEWAY_MAX_CONNECTIONS": "open connections and requests in flight; more are answered 503 (1000)",
}


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _parsed(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not valid: expected {expected}.") from None


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(raw)
        return value

    return parse


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 3600:
        raise ValueError(raw)
    return value


def _positive_seconds(raw: str) -> float:
    value = float(raw)
    if not 0.1 <= value <= 3600:
        raise ValueError(raw)
    return value


def _ttl(raw: str) -> float:
    value = float(raw)
    if not 1 <= value <= 604_800:
        raise ValueError(raw)
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name}={raw!r} is not valid: expected an http(s) URL such as http://localhost:8000.")
    return raw.rstrip("/")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ``GATEWAY_*``/``PROCESSCUBE_*`` variable; raise SettingsError on the first bad one."""
    env = os.environ if env is None else env
    engine_url = _url(env, "PROCESSCUBE_ENGINE_URL")
    client_id = _text(env, "PROCESSCUBE_CLIENT_ID")
    client_secret = _text(env, "PROCESSCUBE_CLIENT_SECRET")
    if (client_id is None) != (client_secret is None):
        raise SettingsError("PROCESSCUBE_CLIENT_ID and PROCESSCUBE_CLIENT_SECRET go together: set both or neither.")
    authority_url = _url(env, "PROCESSCUBE_AUTHORITY_URL")
    level = (_text(env, "GATEWAY_LOG_LEVEL") or "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"GATEWAY_LOG_LEVEL={level!r} is not valid: expected debug, info, warning or error.")
    log_format = (_text(env, "GATEWAY_LOG_FORMAT") or "json").lower()
    if log_format not in ("json", "text"):
        raise SettingsError(f"GATEWAY_LOG_FORMAT={log_format!r} is not valid: expected json or text.")
    redis_url = _text(env, "GATEWAY_REDIS_URL")
    if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            "GATEWAY_REDIS_URL is not valid: expected a redis://, rediss:// or unix:// URL such as redis://redis:6379/0."
        )
    secret = _text(env, "GATEWAY_CURSOR_SECRET")
    if secret is not None and len(secret) < 16:
        raise SettingsError("GATEWAY_CURSOR_SECRET is too short: use at least 16 characters.")
    settings = Settings(
        host=_text(env, "GATEWAY_HOST") or "127.0.0.1",
        port=_parsed(env, "GATEWAY_PORT", 8080, _integer(1, 65535), "a port number from 1 to 65535"),
        engine_url=engine_url,
        authority_url=authority_url,
        client_id=client_id,
        client_secret=client_secret,
        allow_anonymous=_parsed(env, "GATEWAY_ALLOW_ANONYMOUS", engine_url is None, _boolean, "true or false"),
        unsafe_anonymous_root=_parsed(env, "GATEWAY_UNSAFE_ANONYMOUS_ROOT", False, _boolean, "true or false"),
        jwt_audience=_text(env, "GATEWAY_JWT_AUDIENCE"),
        jwt_leeway_seconds=_parsed(env, "GATEWAY_JWT_LEEWAY_SECONDS", 30.0, _seconds, "seconds between 0 and 3600"),
        embedded_engine_port=_parsed(
            env, "GATEWAY_EMBEDDED_ENGINE_PORT", 56100, _integer(0, 65535), "a port number (0: any free port)"
        ),
        embedded_engine_data_dir=Path(_text(env, "GATEWAY_EMBEDDED_ENGINE_DATA_DIR") or ".data/engine"),
        embedded_engine_demo=_parsed(env, "GATEWAY_EMBEDDED_ENGINE_DEMO", False, _boolean, "true or false"),
        engine_timeout_seconds=_parsed(
            env, "GATEWAY_ENGINE_TIMEOUT_SECONDS", 10.0, _seconds, "seconds between 0 and 3600"
        ),
        cache_ttl_seconds=_parsed(env, "GATEWAY_CACHE_TTL_SECONDS", 2.0, _seconds, "seconds between 0 and 3600"),
        cache_max_entries=_parsed(
            env, "GATEWAY_CACHE_MAX_ENTRIES", 10_000, _integer(1, 10_000_000), "a positive integer"
        ),
        cache_max_bytes=_parsed(
            env,
            "GATEWAY_CACHE_MAX_BYTES",
            67_108_864,
            _integer(1_048_576, 68_719_476_736),
            "bytes, from 1048576 (1 MiB) to 68719476736 (64 GiB)",
        ),
        default_page_size=_parsed(
            env, "GATEWAY_DEFAULT_PAGE_SIZE", DEFAULT_PAGE_SIZE, _integer(1, 10_000), "a positive integer"
        ),
        max_page_size=_parsed(env, "GATEWAY_MAX_PAGE_SIZE", 100, _integer(1, 10_000), "a positive integer"),
        max_batch_size=_parsed(env, "GATEWAY_MAX_BATCH_SIZE", 100, _integer(1, 10_000), "a positive integer"),
        batch_concurrency=_parsed(env, "GATEWAY_BATCH_CONCURRENCY", 16, _integer(1, 1_000), "a positive integer"),
        residual_scan_limit=_parsed(
            env, "GATEWAY_RESIDUAL_SCAN_LIMIT", 10_000, _integer(1, 10_000_000), "a positive integer"
        ),
        max_body_bytes=_parsed(
            env, "GATEWAY_MAX_BODY_BYTES", 1_048_576, _integer(1_024, 1_073_741_824), "bytes, at least 1024"
        ),
        max_query_depth=_parsed(env, "GATEWAY_MAX_QUERY_DEPTH", 12, _integer(2, 100), "an integer from 2 to 100"),
        max_aliases=_parsed(env, "GATEWAY_MAX_ALIASES", 64, _integer(1, 1_000), "an integer from 1 to 1000"),
        max_query_tokens=_parsed(
            env, "GATEWAY_MAX_QUERY_TOKENS", 2_000, _integer(50, 100_000), "an integer from 50 to 100000"
        ),
        max_query_cost=_parsed(
            env, "GATEWAY_MAX_QUERY_COST", 50_000, _integer(1, 100_000_000), "an integer from 1 to 100000000"
        ),
        replay_buffer=_parsed(env, "GATEWAY_REPLAY_BUFFER", 10_000, _integer(1, 10_000_000), "a positive integer"),
        subscription_queue=_parsed(
            env, "GATEWAY_SUBSCRIPTION_QUEUE", 256, _integer(1, 1_000_000), "a positive integer"
        ),
        subscriptions_per_caller=_parsed(
            env, "GATEWAY_SUBSCRIPTIONS_PER_CALLER", 100, _integer(1, 1_000_000), "a positive integer"
        ),
        subscriptions_per_connection=_parsed(
            env, "GATEWAY_SUBSCRIPTIONS_PER_CONNECTION", 20, _integer(1, 10_000), "a positive integer"
        ),
        max_subscriptions=_parsed(
            env, "GATEWAY_MAX_SUBSCRIPTIONS", 10_000, _integer(1, 10_000_000), "a positive integer"
        ),
        live_list_interval_ms=_parsed(
            env, "GATEWAY_LIVE_LIST_INTERVAL_MS", 100, _integer(0, 60_000), "milliseconds from 0 to 60000"
        ),
        sse_heartbeat_seconds=_parsed(
            env, "GATEWAY_SSE_HEARTBEAT_SECONDS", 15.0, _seconds, "seconds between 0 and 3600"
        ),
        log_level=level,
        log_format=log_format,
        redis_url=redis_url,
        idempotency_ttl_seconds=_parsed(
            env, "GATEWAY_IDEMPOTENCY_TTL_SECONDS", 86_400.0, _ttl, "seconds from 1 to 604800 (a week)"
        ),
        shutdown_grace_seconds=_parsed(
            env, "GATEWAY_SHUTDOWN_GRACE_SECONDS", 10, _integer(0, 3600), "whole seconds from 0 to 3600"
        ),
        header_timeout_seconds=_parsed(
            env, "GATEWAY_HEADER_TIMEOUT_SECONDS", 10.0, _positive_seconds, "seconds from 0.1 to 3600"
        ),
        max_connections=_parsed(env, "GATEWAY_MAX_CONNECTIONS", 1_000, _integer(1, 1_000_000), "a positive integer"),
    )
    if settings.unsafe_anonymous_root and not settings.allow_anonymous:
        raise SettingsError("GATEWAY_UNSAFE_ANONYMOUS_ROOT needs GATEWAY_ALLOW_ANONYMOUS=true as well.")
    if settings.default_page_size > settings.max_page_size:
        raise SettingsError("GATEWAY_DEFAULT_PAGE_SIZE must not exceed GATEWAY_MAX_PAGE_SIZE.")
    if secret is not None:
        settings = Settings(**{**settings.__dict__, "cursor_secret": secret.encode(), "cursor_secret_configured": True})
    return settings
