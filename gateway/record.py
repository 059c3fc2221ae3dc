"""The request record: what one HTTP request (or one WebSocket connection) did, for its access log line and metrics.

:class:`~gateway.middleware.GatewayMiddleware` makes one per request, keeps it in ``scope["state"]["record"]`` and
in a context variable (so the engine client's request hook can count the engine calls made for it, and every log
record written while it runs gets its ``requestId``), and logs and measures it when the answer is sent. The faces
fill it in by one rule, :meth:`RequestRecord.note`: the REST resource with its operation's name, the GraphQL
extension (:mod:`gateway.gql.observe`) with the operation type and root field; both with the outcome's code and
the verified caller.

Every label a record gives a metric is bounded: faces, operation names taken from the code (route names, schema
fields), codes of :mod:`gateway.core.errors`. Paths, ids and client-chosen operation names go to the log only.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from .core.domain import Caller
from .core.errors import GatewayError

#: The faces of the gateway (the ``face`` label).
GRAPHQL, REST, OTHER = "graphql", "rest", "other"
OK = "OK"
INTERNAL = "INTERNAL"

_current: ContextVar[RequestRecord | None] = ContextVar("gateway_request_record", default=None)


def face_of(path: str) -> str:
    if path == "/graphql" or path.startswith("/graphql/"):
        return GRAPHQL
    if path == "/api" or path.startswith("/api/"):
        return REST
    return OTHER


def subject_of(caller: Caller | GatewayError | None) -> str | None:
    """The ``sub`` of a verified caller; None for the anonymous caller and for one whose token was refused."""
    if isinstance(caller, Caller) and caller.token is not None:
        return caller.user_id
    return None


def code_for_status(status: int) -> str:
    """The code of an answer no face classified (static files, starlette's own 404/405): by its status."""
    if status < 400:
        return OK
    if status == 401:
        return "UNAUTHENTICATED"
    if status == 403:
        return "FORBIDDEN"
    if status < 500:
        return "BAD_REQUEST"
    return INTERNAL


@dataclass
class RequestRecord:
    face: str
    method: str
    path: str
    request_id: str
    websocket: bool = False
    started: float = field(default_factory=time.perf_counter)
    #: Bounded: a route's operation name, ``query.userTasks``, ``mutation.multiple``, ``invalid``...
    operation: str | None = None
    code: str | None = None
    sub: str | None = None
    status: int | None = None
    #: HTTP requests sent to the engine while this request ran (the engine client's request hook counts them).
    engine_calls: int = 0
    #: Answered from the idempotency store (REST ``Idempotent-Replayed: true``).
    replayed: bool = False
    #: WebSocket only: the close code, and the GraphQL operations started on the connection.
    close_code: int | None = None
    operations: int = 0
    #: Whether ``code`` is that of a refused caller (replaced when a later caller is verified: a WebSocket's
    #: ``connection_init`` token after a bad header).
    _code_of_caller: bool = field(default=False, repr=False)

    def note(
        self,
        operation: str | None = None,
        *,
        code: str | None = None,
        caller: Caller | GatewayError | None = None,
    ) -> None:
        """What a face knows of the request (the one rule both faces follow): its operation, the outcome's code
        (``OK`` or a :class:`~gateway.core.errors.GatewayError` code), and the caller (verified or refused).

        A caller that was refused makes the code UNAUTHENTICATED (or its own code) unless one is given.
        """
        if operation is not None:
            self.operation = operation
        if caller is not None:
            self.sub = subject_of(caller)
            if isinstance(caller, GatewayError):
                if code is None and self.code is None:
                    self.code, self._code_of_caller = caller.code, True
            elif self._code_of_caller:
                self.code, self._code_of_caller = None, False
        if code is not None:
            self.code, self._code_of_caller = code, False

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def final_code(self) -> str:
        if self.code is not None:
            return self.code
        return code_for_status(self.status or 500)

    def as_fields(self) -> dict[str, Any]:
        """The access log line's fields (besides ``ts``, ``level``, ``logger`` and ``msg``)."""
        fields: dict[str, Any] = {
            "requestId": self.request_id,
            "face": self.face,
            "operation": self.operation,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "code": self.final_code(),
            "sub": self.sub,
            "durationMs": round(self.seconds() * 1000, 2),
            "engineCalls": self.engine_calls,
        }
        if self.replayed:
            fields["replayed"] = True
        if self.websocket:
            fields["closeCode"] = self.close_code
            fields["operations"] = self.operations
        return fields


def record_of(scope_holder: Any) -> RequestRecord | None:
    """The record of a request: from a starlette ``Request``/``WebSocket`` or an ASGI scope."""
    scope = getattr(scope_holder, "scope", scope_holder)
    if not isinstance(scope, dict):
        return None
    found = (scope.get("state") or {}).get("record")
    return found if isinstance(found, RequestRecord) else None


def current_record() -> RequestRecord | None:
    """The record of the request the running code serves (None outside requests: the engine event stream...)."""
    return _current.get()


def enter(record: RequestRecord) -> Token[RequestRecord | None]:
    """Make ``record`` the current one (for this task and the tasks it starts); returns the token for :func:`leave`."""
    return _current.set(record)


def leave(token: Token[RequestRecord | None]) -> None:
    _current.reset(token)


def count_engine_call() -> None:
    """One HTTP request sent to the engine for the current request (called by the engine client's request hook)."""
    record = _current.get()
    if record is not None:
        record.engine_calls += 1
