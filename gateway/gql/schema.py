"""The strawberry schema, its limits and its document cache, built once per process.

The limits (:mod:`gateway.gql.limits`) keep every step of a request linear in its size; the rule classes and the
:class:`~gateway.gql.limits.DocumentCache` are made here, once, so that all requests share them.
"""

from __future__ import annotations

from typing import Any

from graphql import ASTValidationRule, GraphQLError
from strawberry import Schema
from strawberry.extensions import AddValidationRules

from .cost import CostCalculator, QueryCost
from .errors import ErrorCodes
from .limits import DocumentCache, alias_rule, depth_rule, document_guard
from .mutations import Mutation
from .observe import ObserveOperations
from .queries import Query
from .subscriptions import Subscription


class GatewaySchema(Schema):
    """The schema with the :class:`~gateway.gql.limits.DocumentCache` its requests parse and validate through."""

    documents: DocumentCache
    cost: CostCalculator

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Expected errors are the caller's business; unexpected ones are logged by ErrorCodes, with a request id."""


def build_schema(*, max_depth: int, max_aliases: int, max_tokens: int) -> GatewaySchema:
    """The schema with these limits; ``max_tokens`` also bounds the document's length (see gateway.gql.limits)."""
    rules: list[type[ASTValidationRule]] = [depth_rule(max_depth), alias_rule(max_aliases)]
    documents = DocumentCache(max_tokens=max_tokens)
    schema = GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: AddValidationRules(rules),
            document_guard(documents),
            lambda: QueryCost(schema.cost),  # after the guard: prices documents that passed validation
            ErrorCodes,
            ObserveOperations,
        ],
    )
    schema.documents = documents
    schema.cost = CostCalculator(schema._schema)
    return schema


def default_schema() -> GatewaySchema:
    """The schema with default limits (used to export schema/schema.graphql)."""
    return build_schema(max_depth=12, max_aliases=64, max_tokens=2000)
