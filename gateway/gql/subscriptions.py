"""Subscription resolvers: the live core (:mod:`gateway.core.live`, :mod:`gateway.core.live_lists`) over
graphql-transport-ws.

- **Who.** The connection's caller: the upgrade request's ``Authorization`` header, or the token in the
  ``connection_init`` payload (``{"Authorization": "Bearer <jwt>"}``; browsers cannot set headers on a WebSocket).
  With a bad token, every subscription on the connection fails with UNAUTHENTICATED (see :mod:`gateway.gql.app`).
- **Failures are GraphQL errors with ``extensions.code``.** A subscription that cannot start (UNAUTHENTICATED,
  BAD_REQUEST, CHANGES_EXPIRED, ENGINE_UNAVAILABLE, the hub's TOO_MANY_SUBSCRIPTIONS…) and one that ends
  (TOKEN_EXPIRED, SLOW_CONSUMER, SHUTTING_DOWN) answer a ``next`` message
  ``{"data": null, "errors": [{"message", "extensions": {"code", "requestId"}}]}`` followed by ``complete``
  (strawberry's way with execution errors: a graphql-ws client gets them in its ``next`` callback). A document
  that does not validate (BAD_REQUEST, QUERY_TOO_COMPLEX) and the connection's subscription beyond its limit
  answer an ``error`` message. Never a stack trace: anything unexpected is "Unexpected error."
  (INTERNAL_SERVER_ERROR) with the request id, and logged.
- **Slots.** Each subscription holds one of its connection's ``GATEWAY_SUBSCRIPTIONS_PER_CONNECTION`` slots (the
  one beyond is refused with an ``error`` message, code TOO_MANY_SUBSCRIPTIONS: see :mod:`gateway.gql.app`) and
  one of the hub's (per caller, in all) until it ends; ``complete`` from the client or a disconnect cancels it, and
  the core iterator is closed (``aclosing``), which frees the hub's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import strawberry

from ..core.domain import TaskQuery
from .context import Info
from .inputs import UserTaskFilter, UserTaskSort, to_filter, to_sort
from .live_types import (
    EventsMissed,
    UserTaskEvent,
    UserTaskEventMessage,
    UserTaskListChanges,
    UserTaskListMessage,
    UserTaskListSnapshot,
    event_message,
    list_message,
)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every change of a task you may see that the filter admits. states not given = any state"
        " (unlike userTasks). after: resume after an event id."
    )
    async def user_task_events(
        self, info: Info, filter: UserTaskFilter | None = None, after: str | None = None
    ) -> AsyncGenerator[UserTaskEventMessage, None]:
        context = info.context
        caller = context.caller
        live = context.live_service()
        task_filter = to_filter(filter, any_state=True)  # the core checks it by the listing's rules
        async with aclosing(live.task_events(caller, task_filter, after)) as events:
            async for item in events:
                message: UserTaskEvent | EventsMissed = event_message(item)
                yield message

    @strawberry.subscription(description="The live list: a snapshot, then its changes (coalesced).")
    async def user_task_list(
        self,
        info: Info,
        filter: UserTaskFilter | None = None,
        sort: list[UserTaskSort] | None = None,
        first: int | None = None,
    ) -> AsyncGenerator[UserTaskListMessage, None]:
        context = info.context
        caller = context.caller
        lists = context.live_list_service()
        query = TaskQuery(filter=to_filter(filter), sort=to_sort(sort), first=first)
        async with aclosing(lists.watch(caller, query)) as messages:
            async for item in messages:
                message: UserTaskListSnapshot | UserTaskListChanges | EventsMissed = list_message(item)
                yield message
