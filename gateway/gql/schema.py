"""The strawberry schema, its limits and caches, built once per process."""

from __future__ import annotations

from typing import Any

from graphql import ASTValidationRule, GraphQLError, ValidationRule
from graphql.language import FieldNode
from strawberry import Schema
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from .errors import ErrorCodes
from .mutations import Mutation
from .queries import Query


def alias_validator(max_aliases: int) -> type[ValidationRule]:
    class MaxAliasesRule(ValidationRule):
        count = 0

        def enter_field(self, node: FieldNode, *_args: object) -> None:
            if node.alias is not None:
                self.count += 1
                if self.count == max_aliases + 1:
                    self.report_error(
                        GraphQLError(f"{self.count} aliases found. Allowed: {max_aliases}.", nodes=[node])
                    )

    return MaxAliasesRule


class GatewaySchema(Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Expected errors are the caller's business; unexpected ones are logged by ErrorCodes, with a request id."""


def build_schema(*, max_depth: int, max_aliases: int, max_tokens: int) -> GatewaySchema:
    """The rule classes are made here, once: ValidationCache keys on them (strawberry#4635)."""
    rules: list[type[ASTValidationRule]] = [depth_validator(max_depth, None), alias_validator(max_aliases)]
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            ErrorCodes,
        ],
    )


def default_schema() -> GatewaySchema:
    """The schema with default limits (used to export schema/schema.graphql)."""
    return build_schema(max_depth=12, max_aliases=64, max_tokens=2000)
