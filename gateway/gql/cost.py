"""The cost of a GraphQL request, computed from its document and variables before anything runs.

Depth, aliases and tokens (:mod:`gateway.gql.limits`) bound a document's size, not its work: 64 aliases of a
listing with a gateway-side filter each asked the engine for up to 20 pages. So every operation is priced before
execution, and one over ``GATEWAY_MAX_QUERY_COST`` is refused with ``QUERY_TOO_COMPLEX`` before any resolver runs.
Every answer carries the price in ``extensions.cost`` (``{"requested": N, "limit": M}``, and ``"refused": true``
when it was over).

How a selection is priced (the unit is one object in the answer; an engine call weighs ``ENGINE_CALL_COST``):

- a scalar or enum field, ``__typename``: 0;
- a field of an object type: 1, plus its own selection; a list: its size times that (nested lists multiply);
- list sizes: ``edges``/``nodes`` of ``userTasks`` (and the task lists of ``userTaskList``) the ``first`` asked,
  else the default page size (at most the largest page); a batch mutation's results its number of items (at most
  the largest batch); introspection lists the longest such list in this schema (types, fields of a type, ...);
  any other list (``formFields``, ``enumValues``, ``nextTasks``, ``problems``) ``EMBEDDED_LIST_SIZE``;
- engine work of root fields: ``userTasks`` one call when the engine can apply its filter and sort, else its
  whole candidate scan, ``residual_scan_limit / scan_page_size`` calls (20 by default); ``userTask`` one call;
  a mutation ``WRITE_CALLS`` calls per item; ``userTaskList`` as ``userTasks``, ``userTaskEvents`` one call;
- on a union or interface, fields on the abstract type count always and, of the fragments on its member types,
  the dearest one.

Fragments are priced once each (their price does not depend on where they are spread), so pricing is linear in
the document. Callers without a token (anonymous) may spend at most the price of the standard introspection query
(GraphiQL's) on introspection in one request.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    SelectionSetNode,
    get_introspection_query,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
    parse,
    value_from_ast_untyped,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from strawberry.extensions import SchemaExtension

from ..core.budget import scan_budget
from ..core.domain import Caller
from ..core.filtering import RESIDUAL_FIELDS
from ..core.ports import ENGINE_SORT_FIELDS

#: What one engine call weighs, in objects of the answer.
ENGINE_CALL_COST = 100
#: Engine calls per written item (the write, and reading the task back or explaining a refusal).
WRITE_CALLS = 2
#: Assumed length of a list no argument bounds (a task's form fields, a field's enum values, next tasks).
EMBEDDED_LIST_SIZE = 10
#: GATEWAY_MAX_QUERY_COST's default: GraphiQL's introspection (about 49,000) and every listing in the README pass;
#: 25 listings with gateway-side filters (500 engine calls) do not.
DEFAULT_MAX_QUERY_COST = 50_000

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"

_LIST_FIELDS_OF_PAGE = {
    ("UserTaskConnection", "edges"),
    ("UserTaskConnection", "nodes"),
    ("UserTaskListSnapshot", "tasks"),
    ("UserTaskListChanges", "added"),
    ("UserTaskListChanges", "updated"),
}
_LISTINGS = {"userTasks", "userTaskList"}
_LOOKUPS = {"userTask", "userTaskEvents"}
_BATCHES = {"reserveUserTasks": "ids", "cancelUserTaskReservations": "ids", "finishUserTasks": "items"}
_WRITES = {"reserveUserTask", "cancelUserTaskReservation", "finishUserTask"}
_RESIDUAL_FILTER_FIELDS = {
    "".join(part.capitalize() if index else part for index, part in enumerate(name.split("_")))
    for name in RESIDUAL_FIELDS
}
_ENGINE_SORT_NAMES = {field.value for field in ENGINE_SORT_FIELDS}


@dataclass(frozen=True)
class CostLimits:
    """What prices depend on: the service's page, batch and scan sizes, and the budget."""

    max_cost: int = DEFAULT_MAX_QUERY_COST
    default_page_size: int = 20
    max_page_size: int = 100
    max_batch_size: int = 100
    residual_scan_limit: int = 10_000
    scan_page_size: int = 500

    @property
    def scan_calls(self) -> int:
        """Engine calls of a whole candidate scan."""
        return max(1, math.ceil(self.residual_scan_limit / max(1, self.scan_page_size)))


@dataclass(frozen=True)
class Price:
    """The price of an operation: in all, and the part of it that is introspection."""

    total: int
    introspection: int


def introspection_list_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], int]:
    """The longest list each introspection list field answers in this schema (at least 1)."""
    types = list(schema.type_map.values())
    with_fields = [named for named in types if isinstance(named, GraphQLObjectType | GraphQLInterfaceType)]
    inputs = [named for named in types if isinstance(named, GraphQLInputObjectType)]
    fields = [field for named in with_fields for field in named.fields.values()]

    def longest(values: Iterable[int]) -> int:
        return max(1, max(values, default=1))

    return {
        ("__Schema", "types"): len(types),
        ("__Schema", "directives"): max(1, len(schema.directives)),
        ("__Type", "fields"): longest(len(named.fields) for named in with_fields),
        ("__Type", "inputFields"): longest(len(named.fields) for named in inputs),
        ("__Type", "interfaces"): longest(len(getattr(named, "interfaces", ())) for named in types),
        ("__Type", "possibleTypes"): longest(
            len(named.types) for named in types if isinstance(named, GraphQLUnionType)
        ),
        ("__Type", "enumValues"): longest(len(named.values) for named in types if isinstance(named, GraphQLEnumType)),
        ("__Field", "args"): longest(len(field.args) for field in fields),
        ("__Directive", "args"): longest(len(directive.args) for directive in schema.directives),
    }


class CostCalculator:
    """Prices operations of one schema; one per schema (the introspection sizes are measured once)."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.introspection_sizes = introspection_list_sizes(schema)
        #: The most wrappers (non-null, list) around a type in this schema: deeper ``ofType`` answers null.
        self.max_wrappers = max_wrappers(schema)
        reference = parse(
            get_introspection_query(
                descriptions=True,
                specified_by_url=True,
                directive_is_repeatable=True,
                schema_description=True,
                input_value_deprecation=True,
            )
        )
        #: What anonymous callers may spend on introspection per request: the standard introspection query.
        self.anonymous_introspection_limit = self.price(reference, None, {}, CostLimits()).introspection

    def price(
        self,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        limits: CostLimits,
    ) -> Price:
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return Price(0, 0)
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return Price(0, 0)
        walk = _Walk(self, document, variables or {}, limits)
        total, introspection = walk.selection_set(operation.selection_set, root, page=limits.default_page_size)
        return Price(total, introspection)


class _Walk:
    def __init__(
        self, calculator: CostCalculator, document: DocumentNode, variables: Mapping[str, Any], limits: CostLimits
    ) -> None:
        self.calculator = calculator
        self.variables = variables
        self.limits = limits
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._priced: dict[tuple[str, int, int], tuple[int, int]] = {}
        self._pricing: set[str] = set()

    # -- arguments ---------------------------------------------------------------------------------------------

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                try:
                    return value_from_ast_untyped(argument.value, dict(self.variables))
                except Exception:  # a bad value is validation's or coercion's to report
                    return None
        return None

    def page_size(self, node: FieldNode) -> int:
        first = self.argument(node, "first")
        if isinstance(first, int) and not isinstance(first, bool):
            return max(0, min(first, self.limits.max_page_size))
        return min(self.limits.default_page_size, self.limits.max_page_size)

    def batch_size(self, node: FieldNode, argument: str) -> int:
        items = self.argument(node, argument)
        count = len(items) if isinstance(items, list) else 1
        return max(0, min(count, self.limits.max_batch_size))

    def scans(self, node: FieldNode) -> bool:
        """Whether a listing needs a candidate scan: a gateway-side filter, or a sort the engine cannot do."""
        task_filter = self.argument(node, "filter")
        if isinstance(task_filter, Mapping):
            for name, value in task_filter.items():
                if name in _RESIDUAL_FILTER_FIELDS and value not in (None, [], ""):
                    return True
        sort = self.argument(node, "sort")
        if isinstance(sort, Mapping):
            sort = [sort]
        if isinstance(sort, list) and sort:
            if len(sort) > 1:
                return True
            first = sort[0]
            return not (isinstance(first, Mapping) and first.get("field") in _ENGINE_SORT_NAMES)
        return False

    # -- selections --------------------------------------------------------------------------------------------

    def selection_set(
        self, selections: SelectionSetNode, parent: GraphQLNamedType, *, page: int, of_type: int = 0
    ) -> tuple[int, int]:
        """(price, introspection part) of one instance of ``parent`` with these selections."""
        total = introspection = 0
        alternatives: list[tuple[int, int]] = []
        abstract = is_abstract_type(parent)
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                cost, intro = self.field(selection, parent, page=page, of_type=of_type)
                total, introspection = total + cost, introspection + intro
                continue
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value if selection.type_condition else None
                target = self.calculator.schema.get_type(condition) if condition else parent
                if target is None:
                    continue
                cost, intro = self.selection_set(selection.selection_set, target, page=page, of_type=of_type)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
                target = self.calculator.schema.get_type(fragment.type_condition.name.value)
                if target is None:
                    continue
                cost, intro = self.fragment(fragment, target, page=page, of_type=of_type)
            else:
                continue
            if abstract and not is_abstract_type(target) and target is not parent:
                alternatives.append((cost, intro))  # applies to one member type: the dearest counts
            else:
                total, introspection = total + cost, introspection + intro
        if alternatives:
            cost, intro = max(alternatives)
            total, introspection = total + cost, introspection + intro
        return total, introspection

    def fragment(
        self, fragment: FragmentDefinitionNode, target: GraphQLNamedType, *, page: int, of_type: int
    ) -> tuple[int, int]:
        key = (fragment.name.value, page, of_type)
        known = self._priced.get(key)
        if known is not None:
            return known
        if fragment.name.value in self._pricing:
            return 0, 0  # a cycle: validation reports it
        self._pricing.add(fragment.name.value)
        try:
            priced = self.selection_set(fragment.selection_set, target, page=page, of_type=of_type)
        finally:
            self._pricing.discard(fragment.name.value)
        self._priced[key] = priced
        return priced

    def field(self, node: FieldNode, parent: GraphQLNamedType, *, page: int, of_type: int) -> tuple[int, int]:
        name = node.name.value
        if name == "__typename":
            return 0, 0
        wrapped = 0
        if parent.name == "__Type" and name == "ofType":
            wrapped = of_type + 1
            if wrapped > self.calculator.max_wrappers:
                return 0, 0  # no type of this schema is wrapped this deep: null
        schema = self.calculator.schema
        is_root = parent in (schema.query_type, schema.mutation_type, schema.subscription_type)
        if name == "__schema" and is_root:
            field_type: GraphQLOutputType = SchemaMetaFieldDef.type
        elif name == "__type" and is_root:
            field_type = TypeMetaFieldDef.type
        else:
            definition = getattr(parent, "fields", {}).get(name)
            if definition is None:
                return 0, 0  # validation reports it
            field_type = definition.type
        own, child_page = 0, page
        if is_root:
            own, child_page = self.root_work(node)
        named = get_named_type(field_type)
        lists = _list_depth(field_type)
        if is_leaf_type(named) or node.selection_set is None:
            return own, 0
        size = 1
        if lists:
            size = self.list_size(parent.name, name, node, child_page) ** lists
        cost, intro = self.selection_set(node.selection_set, named, page=child_page, of_type=wrapped)
        total = own + size * (1 + cost)
        introspective = name.startswith("__") or parent.name.startswith("__")
        return total, (size * (1 + cost) if introspective else size * intro)

    def root_work(self, node: FieldNode) -> tuple[int, int]:
        """(engine work of a root field, page size for the lists below it)."""
        name = node.name.value
        if name in _LISTINGS:
            calls = self.limits.scan_calls if self.scans(node) else 1
            return calls * ENGINE_CALL_COST, self.page_size(node)
        if name in _BATCHES:
            items = self.batch_size(node, _BATCHES[name])
            return items * WRITE_CALLS * ENGINE_CALL_COST, items
        if name in _WRITES:
            return WRITE_CALLS * ENGINE_CALL_COST, 1
        if name in _LOOKUPS:
            return ENGINE_CALL_COST, self.limits.default_page_size
        return 0, self.limits.default_page_size

    def list_size(self, parent: str, name: str, node: FieldNode, page: int) -> int:
        if (parent, name) in _LIST_FIELDS_OF_PAGE:
            return page
        if parent in (self.calculator.schema.mutation_type.name if self.calculator.schema.mutation_type else "",):
            return page  # a batch's results: one per item
        introspection = self.calculator.introspection_sizes.get((parent, name))
        if introspection is not None:
            return introspection
        return EMBEDDED_LIST_SIZE


def max_wrappers(schema: GraphQLSchema) -> int:
    """The most non-null and list wrappers around one field's or argument's type in the schema."""

    def wrappers(of: Any) -> int:
        count = 0
        while isinstance(of, GraphQLNonNull | GraphQLList):
            count, of = count + 1, of.of_type
        return count

    found = 0
    for named in schema.type_map.values():
        for field in getattr(named, "fields", {}).values():
            found = max(found, wrappers(field.type))
            for argument in getattr(field, "args", {}).values():
                found = max(found, wrappers(argument.type))
    for directive in schema.directives:
        for argument in directive.args.values():
            found = max(found, wrappers(argument.type))
    return found


def _list_depth(field_type: GraphQLOutputType) -> int:
    depth = 0
    current: Any = field_type
    while isinstance(current, GraphQLNonNull | GraphQLList):
        if isinstance(current, GraphQLList):
            depth += 1
        current = current.of_type
    return depth


def cost_error(price: Price, limit: int, *, introspection_limit: int | None = None) -> GraphQLError:
    """The refusal of an operation over its budget, naming the budget and the price."""
    if introspection_limit is not None:
        message = (
            f"The query's introspection costs {price.introspection:,}, over the {introspection_limit:,} allowed per"
            " request without a token (the standard introspection query fits; send a token for more)."
        )
    else:
        message = (
            f"The query costs {price.total:,}, over the budget of {limit:,} per request (GATEWAY_MAX_QUERY_COST)."
            " Ask for fewer or smaller lists, fewer listings with gateway-side filters, or split the request."
        )
    return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX, "cost": price.total, "limit": limit})


class QueryCost(SchemaExtension):
    """Prices each operation after validation; refuses it before execution when it is over the budget.

    The budget and the service's sizes come from the request's context (``Context.cost_limits``); the price goes
    into ``extensions.cost`` of the answer. Execution runs inside a per-request candidate scan budget
    (:func:`gateway.core.budget.scan_budget`), so the request's scans in all stay within ``residual_scan_limit``.
    """

    def __init__(self, calculator: CostCalculator) -> None:
        self.calculator = calculator
        self._report: dict[str, object] | None = None

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors == []:
            limits: CostLimits = getattr(context.context, "cost_limits", None) or CostLimits()
            variables = context.variables if isinstance(context.variables, Mapping) else {}
            price = self.calculator.price(document, context.operation_name, variables, limits)
            report: dict[str, object] = {"requested": price.total, "limit": limits.max_cost}
            error = None
            if price.total > limits.max_cost:
                error = cost_error(price, limits.max_cost)
            elif _anonymous(context.context) and price.introspection > self.calculator.anonymous_introspection_limit:
                limit = self.calculator.anonymous_introspection_limit
                error = cost_error(price, limits.max_cost, introspection_limit=limit)
                report["introspectionLimit"] = limit
            if error is not None:
                report["refused"] = True
                context.pre_execution_errors = [error]
            self._report = report
        yield

    def on_execute(self) -> Iterator[None]:
        limits: CostLimits = getattr(self.execution_context.context, "cost_limits", None) or CostLimits()
        with scan_budget(limits.residual_scan_limit):
            yield

    def get_results(self) -> dict[str, object]:
        return {} if self._report is None else {"cost": self._report}


def _anonymous(context: object) -> bool:
    caller = getattr(context, "caller_or_error", None)
    return not isinstance(caller, Caller) or caller.token is None


def cost_limits(settings: object, service: object) -> CostLimits:
    """The budget (``settings.max_query_cost``) and the sizes of the service's listings, scans and batches."""
    sizes = getattr(service, "limits", None)
    defaults = CostLimits()
    return CostLimits(
        max_cost=getattr(settings, "max_query_cost", defaults.max_cost),
        default_page_size=getattr(sizes, "default_page_size", defaults.default_page_size),
        max_page_size=getattr(sizes, "max_page_size", defaults.max_page_size),
        max_batch_size=getattr(sizes, "max_batch_size", defaults.max_batch_size),
        residual_scan_limit=getattr(sizes, "residual_scan_limit", defaults.residual_scan_limit),
        scan_page_size=getattr(sizes, "scan_page_size", defaults.scan_page_size),
    )
