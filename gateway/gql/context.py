"""The per-request context: the caller (verified before any resolver runs), the service and the DataLoader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from ..core.domain import Caller, UserTask
from ..core.errors import GatewayError
from ..core.service import TaskService

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass
class Context:
    service: TaskService
    request_id: str
    caller_or_error: Caller | GatewayError
    request: Any = None
    response: Any = None
    task_loader: DataLoader[str, UserTask | None] = field(init=False)

    def __post_init__(self) -> None:
        # The loader captures the service and the caller, not the context: a closure over ``self`` would make every
        # request's context, request and body a reference cycle that waits for the garbage collector.
        service, caller_or_error = self.service, self.caller_or_error

        async def load(ids: Sequence[str]) -> list[UserTask | None]:
            if isinstance(caller_or_error, GatewayError):
                raise caller_or_error
            return await service.get_tasks(caller_or_error, list(ids))

        self.task_loader = DataLoader(load_fn=load)

    @property
    def caller(self) -> Caller:
        """The verified caller; raises the authentication error for requests that failed it."""
        if isinstance(self.caller_or_error, GatewayError):
            raise self.caller_or_error
        return self.caller_or_error


Info: TypeAlias = StrawberryInfo[Context, None]
