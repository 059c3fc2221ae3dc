"""The per-request context: the caller (verified before any resolver runs), the service and the DataLoader.

Over WebSocket there is one context per connection, shared by its operations: the caller may be replaced once by the
token in ``connection_init`` (:meth:`Context.authenticate`); the connection's live subscriptions are counted by the
WebSocket handler (:mod:`gateway.gql.app`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from ..core.domain import Caller, UserTask
from ..core.errors import BadRequest, GatewayError
from ..core.live import LiveService
from ..core.live_lists import LiveLists
from ..core.service import TaskService
from .cost import CostLimits

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Live subscriptions one WebSocket may hold when the app does not say (GATEWAY_SUBSCRIPTIONS_PER_CONNECTION).
DEFAULT_SUBSCRIPTIONS_PER_CONNECTION = 20


@dataclass
class Context:
    service: TaskService
    request_id: str
    caller_or_error: Caller | GatewayError
    request: Any = None
    response: Any = None
    live: LiveService | None = None
    live_lists: LiveLists | None = None
    subscriptions_per_connection: int = DEFAULT_SUBSCRIPTIONS_PER_CONNECTION
    #: What the client sent in graphql-transport-ws ``connection_init`` (strawberry sets it; WebSocket only).
    connection_params: dict[str, object] | None = None
    #: Whether the loader keeps what it loaded: for one HTTP request, yes; not for a WebSocket's context, which
    #: serves every operation of the connection (a later query would see the task as an earlier one found it).
    keep_loaded: bool = True
    #: The code of the union member a single-task mutation answered (TASK_NOT_FOUND, …): the operation's outcome
    #: for the request record (see :mod:`gateway.gql.observe`); None: no refusal.
    outcome_code: str | None = None
    #: The budget of each operation and the sizes its price depends on (see :mod:`gateway.gql.cost`).
    cost_limits: CostLimits = field(default_factory=CostLimits)
    task_loader: DataLoader[str, UserTask | None] = field(init=False)

    def __post_init__(self) -> None:
        self._make_loader()

    def _make_loader(self) -> None:
        # The loader captures the service and the caller, not the context: a closure over ``self`` would make every
        # request's context, request and body a reference cycle that waits for the garbage collector.
        service, caller_or_error = self.service, self.caller_or_error

        async def load(ids: Sequence[str]) -> list[UserTask | None]:
            if isinstance(caller_or_error, GatewayError):
                raise caller_or_error
            return await service.get_tasks(caller_or_error, list(ids))

        self.task_loader = DataLoader(load_fn=load, cache=self.keep_loaded)

    def authenticate(self, caller: Caller | GatewayError) -> None:
        """Make ``caller`` (or the authentication error) that of every later operation (a WebSocket's
        ``connection_init`` token)."""
        self.caller_or_error = caller
        self._make_loader()

    @property
    def caller(self) -> Caller:
        """The verified caller; raises the authentication error for requests that failed it."""
        if isinstance(self.caller_or_error, GatewayError):
            raise self.caller_or_error
        return self.caller_or_error

    def live_service(self) -> LiveService:
        if self.live is None:
            raise BadRequest("Live subscriptions are not available here.")
        return self.live

    def live_list_service(self) -> LiveLists:
        if self.live_lists is None:
            raise BadRequest("Live subscriptions are not available here.")
        return self.live_lists


Info: TypeAlias = StrawberryInfo[Context, None]
