"""Schemathesis hooks for the GraphQL fuzz run (``SCHEMATHESIS_HOOKS=tests.contract.graphql_scalars``).

The schema's ``JSON`` scalar (a task's token and result, a token predicate's value) is a custom scalar: schemathesis
cannot generate values for it without a strategy, and a strategy is Python code (there is no configuration for
it). This module gives it one: any JSON value, written as a GraphQL literal. Nothing else is changed: the GraphQL
run has no other hook. (The REST run needs none at all: see schemathesis.toml.)
"""

from __future__ import annotations

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

#: Object keys: an object literal's keys are GraphQL names.
_names = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,11}\Z")
_scalars: st.SearchStrategy[graphql.ValueNode] = st.one_of(
    st.none().map(lambda _: graphql.NullValueNode()),
    st.booleans().map(nodes.Boolean),
    st.integers(min_value=-(2**53), max_value=2**53).map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20).map(nodes.String),
)


def _field(pair: tuple[str, graphql.ValueNode]) -> graphql.ObjectFieldNode:
    return graphql.ObjectFieldNode(name=graphql.NameNode(value=pair[0]), value=pair[1])


def _containers(children: st.SearchStrategy[graphql.ValueNode]) -> st.SearchStrategy[graphql.ValueNode]:
    return st.one_of(
        st.lists(children, max_size=4).map(nodes.List),
        st.lists(st.tuples(_names, children), max_size=4).map(
            lambda pairs: nodes.Object([_field(pair) for pair in pairs])
        ),
    )


#: Any JSON value as a GraphQL literal.
JSON_VALUES = st.recursive(_scalars, _containers, max_leaves=12)

schemathesis.graphql.scalar("JSON", JSON_VALUES)
