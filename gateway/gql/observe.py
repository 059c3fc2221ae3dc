"""What a GraphQL operation was and how it ended, for the request record (access log, metrics).

:class:`ObserveOperations` (a schema extension) names each operation by its type and its one root field as the
schema defines it (``query.userTasks``, ``mutation.finishUserTask``; ``query.multiple`` for several root fields;
``invalid`` for a document that does not parse or validate): never by the client's operation name or aliases, so
the label set is bounded by the schema. Its code is the first error's ``extensions.code``, else the code of the
union member a single-task mutation answered (``Context.outcome_code``), else ``OK``.

Over HTTP it fills the request's :class:`~gateway.record.RequestRecord` (the middleware logs and counts it). Over
WebSocket each operation is counted when its first message is sent (a subscription's snapshot, first event or
error; a query's result), or when it ends without one.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
    get_operation_ast,
)
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from ..core.errors import GatewayError
from ..metrics import GatewayMetrics
from ..record import INTERNAL, OK, record_of
from .errors import request_error_code

INVALID = "invalid"


def operation_label(document: DocumentNode | None, operation_name: str | None) -> str:
    """``<type>.<root field>`` of the operation ``document`` runs (``multiple`` for several), or ``invalid``."""
    if document is None:
        return INVALID
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return INVALID
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    fields: set[str] = set()
    _root_fields(operation.selection_set, fragments, fields, set())
    kind = operation.operation.value
    if not fields:
        return INVALID
    if len(fields) > 1:
        return f"{kind}.multiple"
    return f"{kind}.{fields.pop()}"


def _root_fields(
    selections: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    found: set[str],
    seen: set[str],
) -> None:
    for selection in selections.selections:
        if len(found) > 1:
            return  # "multiple" already
        if isinstance(selection, FieldNode):
            found.add(selection.name.value)  # the schema's name, not the alias
        elif isinstance(selection, InlineFragmentNode):
            _root_fields(selection.selection_set, fragments, found, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                _root_fields(fragment.selection_set, fragments, found, seen)


def error_code(error: GraphQLError) -> str:
    """The code a GraphQL error carries (or will carry once :class:`~gateway.gql.errors.ErrorCodes` coded it)."""
    if isinstance(error.original_error, GatewayError):
        return error.original_error.code
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return INTERNAL if code == "INTERNAL_SERVER_ERROR" else code
    if error.path is None:
        return request_error_code(error.message)
    return INTERNAL


def result_code(result: object, outcome_code: str | None) -> str:
    errors = getattr(result, "errors", None)
    if errors:
        return error_code(errors[0])
    return outcome_code or OK


class ObserveOperations(SchemaExtension):
    """Names each operation and its outcome on the request record (HTTP), or counts it (WebSocket)."""

    _invalid = False
    _counted = False

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if hasattr(context, "outcome_code"):
            context.outcome_code = None
        yield
        request = getattr(context, "request", None)
        if isinstance(request, WebSocket):
            if not self._counted:
                self._count(self.execution_context.result)
            return
        record = record_of(request)
        if record is not None:
            record.note(
                self._label(),
                code=result_code(self.execution_context.result, getattr(context, "outcome_code", None)),
                caller=getattr(context, "caller_or_error", None),
            )

    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        self._invalid = context.graphql_document is None or bool(context.pre_execution_errors)

    def on_validate(self) -> Iterator[None]:
        yield
        self._invalid = self._invalid or bool(self.execution_context.pre_execution_errors)

    def on_stream_result(self, result: object) -> Iterator[None]:
        if not self._counted:
            self._count(result)
        yield

    def _label(self) -> str:
        if self._invalid:
            return INVALID
        context = self.execution_context
        return operation_label(context.graphql_document, context.operation_name)

    def _count(self, result: object) -> None:
        self._counted = True
        context = self.execution_context.context
        request = getattr(context, "request", None)
        record = record_of(request)
        if record is not None:
            record.operations += 1
        metrics: GatewayMetrics | None = getattr(getattr(getattr(request, "app", None), "state", None), "metrics", None)
        if metrics is not None:
            metrics.request("graphql", self._label(), result_code(result, getattr(context, "outcome_code", None)))
