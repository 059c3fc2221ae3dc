"""Query resolvers: thin translations onto TaskService."""

from __future__ import annotations

import strawberry

from ..core import limits
from ..core.domain import TaskQuery
from .context import Info
from .inputs import UserTaskFilter, UserTaskSort, to_filter, to_sort
from .types import UserTask, UserTaskConnection


@strawberry.type
class Query:
    @strawberry.field(description="User tasks, filtered, sorted and paged on the server. Default: waiting tasks.")
    async def user_tasks(
        self,
        info: Info,
        filter: UserTaskFilter | None = None,
        sort: list[UserTaskSort] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> UserTaskConnection:
        query = TaskQuery(filter=to_filter(filter), sort=to_sort(sort), first=first, after=after)
        page = await info.context.service.list_tasks(info.context.caller, query)
        return UserTaskConnection.from_domain(page)

    @strawberry.field(description="One task by id, in any state; null when there is none or you may not see it.")
    async def user_task(self, info: Info, id: strawberry.ID) -> UserTask | None:
        info.context.caller  # noqa: B018  (authenticate before the loader batches the call)
        limits.check_task_id(str(id))  # an odd id is this field's BAD_REQUEST, not a failure of the whole batch
        task = await info.context.task_loader.load(str(id))
        return None if task is None else UserTask.from_domain(task)
