"""Limits on GraphQL requests: every step from the raw bytes to validation does work linear in the input.

A hostile request must get a fast, typed refusal, and it must not leave anything behind. The steps and what
bounds each of them:

=====================================  ====================================================================
step                                   bound
=====================================  ====================================================================
JSON body, GET ``variables``,          nesting checked by a linear scan of the raw text *before*
WebSocket messages                     ``json.loads`` recurses (:func:`json_too_deep`, ``MAX_REQUEST_JSON_DEPTH``)
parsing the document                   at most ``max_tokens`` tokens (comments count) and
                                       ``DOCUMENT_CHARACTERS_PER_TOKEN * max_tokens`` characters, refused
                                       before lexing; graphql-core refuses nesting deeper than 200 levels
the document's shape, before           :func:`document_shape_error`: few fields of one response name and
validation                             few fragment spreads per selection set (the inputs that make
                                       ``OverlappingFieldsCanBeMerged`` quadratic)
validation                             :func:`depth_rule` walks each fragment once (strawberry's
                                       ``QueryDepthLimiter`` re-walks every spread: exponential);
                                       ``OverlappingFieldsCanBeMerged`` runs on a work budget of
                                       ``OVERLAP_COMPLEXITY_BUDGET`` (:class:`BudgetedOverlappingFieldsRule`)
the work the operation asks for        :mod:`gateway.gql.cost` prices it after validation (lists times their
                                       sizes, engine calls, scans, batch items) and refuses it over
                                       ``GATEWAY_MAX_QUERY_COST`` before execution
caches                                 :class:`DocumentCache` keeps parsed and validated documents of at most
                                       ``CACHEABLE_DOCUMENT_LENGTH`` characters, keyed by their SHA-256, within
                                       ``DOCUMENT_CACHE_BYTES``; longer documents are never remembered
=====================================  ====================================================================

Every refusal is a GraphQL error whose message :func:`gateway.gql.errors.request_error_code` classifies as
``QUERY_TOO_COMPLEX`` (its ``LIMIT_MESSAGES`` hold the phrases used here); a JSON body nested too deeply is a
transport error, ``BAD_REQUEST`` (see :mod:`gateway.gql.app`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from cachetools import LRUCache
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_operation_ast,
    parse,
)
from graphql.language.visitor import SKIP, VisitorAction
from graphql.validation import OverlappingFieldsCanBeMergedRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from ..core.limits import MAX_DOCUMENT_DEPTH
from .errors import classify

# -- the numbers ---------------------------------------------------------------------------------------------

#: A request's JSON (body, ``variables``, a WebSocket message) may nest one JSON value plus its envelope
#: (``{"variables": {"items": [{"result": …}]}}``): the core's limit for whole documents, as REST bodies have it.
MAX_REQUEST_JSON_DEPTH = MAX_DOCUMENT_DEPTH
#: Longest document, per allowed token: real documents average well under 10 characters per token. Refusing a
#: longer one before lexing matters because graphql-core lexes in Python, about 0.1-0.4 s per MB of comments,
#: whitespace or string, which would block the event loop for every caller.
DOCUMENT_CHARACTERS_PER_TOKEN = 32
#: Documents longer than this are parsed and validated each time, never cached (and never answered from the
#: response cache): remembering them is what let distinct large documents grow the process without bound.
CACHEABLE_DOCUMENT_LENGTH = 16_384
#: What the document cache may hold, estimated from the documents' lengths (see AST_BYTES_PER_CHARACTER).
DOCUMENT_CACHE_BYTES = 32 * 1024 * 1024
DOCUMENT_CACHE_ENTRIES = 1024
#: Memory of a parsed document with locations, per character of its text (tracemalloc: 45-100 for real documents).
AST_BYTES_PER_CHARACTER = 128
#: Fields of one response name in one selection set (inline fragments included): each pair of them is compared by
#: OverlappingFieldsCanBeMerged, with their sub-selections, so 400 repeated fields took over a second.
MAX_REPEATED_FIELDS = 32
#: Distinct fragments spread into one selection set: each pair of them is compared with each other.
MAX_FRAGMENT_SPREADS = 64
#: Selection levels of an operation counting every field, introspection included (the configured depth does
#: not count introspection fields, as strawberry's limiter did): execution recurses once per level.
MAX_SELECTION_NESTING = 64
#: Work units for OverlappingFieldsCanBeMerged (graphql-core's default is 500,000, over 2 s of CPU for some
#: documents). Real documents spend well under 1,000 (a five-member union mutation: 36); this budget bounds the
#: rule to well under 0.1 s.
OVERLAP_COMPLEXITY_BUDGET = 20_000


# -- JSON ----------------------------------------------------------------------------------------------------

#: A JSON string, or an unterminated one up to the end of the text: every quote that starts a match ends one, so
#: the scan stays linear (a pattern that could fail would be retried from every later quote: quadratic).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class JSONTooDeep(json.JSONDecodeError):
    """JSON nested deeper than the limit, refused before ``json.loads`` recursed into it.

    A JSONDecodeError, so that every caller of a JSON decoder (strawberry's WebSocket adapter too) treats it as
    JSON it cannot use; ``reason`` says why.
    """

    def __init__(self, limit: int) -> None:
        self.reason = f"The JSON is nested deeper than {limit} levels."
        super().__init__(self.reason, "", 0)


def json_too_deep(data: str | bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects deeper than ``limit``, in linear time, without parsing it.

    Brackets inside strings do not count (nor those after an unterminated string, where a decoder stops). The
    text need not be valid JSON (then the answer concerns the part a decoder would read before failing). Most
    texts have fewer brackets than the limit and are answered by counting them, at C speed.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    # Each opening bracket adds 1 and each closing one subtracts 1: with steps of 2 and 0, the running sum after
    # n brackets minus n is the depth there. accumulate, map and max all run in C.
    steps = brackets.translate(_BRACKET_STEPS)
    return max(map(operator.sub, itertools.accumulate(steps), itertools.count(1))) > limit


def decode_json(data: str | bytes, *, max_depth: int = MAX_REQUEST_JSON_DEPTH) -> Any:
    """``json.loads`` for untrusted text: raises JSONTooDeep (a JSONDecodeError) instead of recursing deeply."""
    if json_too_deep(data, max_depth):
        raise JSONTooDeep(max_depth)
    try:
        return json.loads(data)
    except RecursionError:  # not reachable within the depth limit; never a 500 even so
        raise JSONTooDeep(max_depth) from None


# -- the document's shape and depth --------------------------------------------------------------------------


def _flattened(selection_set: SelectionSetNode) -> Iterator[FieldNode | FragmentSpreadNode]:
    """The fields and spreads of a selection set, with inline fragments opened (as the merge rule sees them)."""
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FieldNode | FragmentSpreadNode):
                yield selection


def _selection_sets(document: DocumentNode) -> Iterator[SelectionSetNode]:
    """Every selection set of the document that is not an inline fragment's own (those belong to their parent)."""
    stack = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        selection_set = stack.pop()
        yield selection_set
        for selection in _flattened(selection_set):
            if isinstance(selection, FieldNode) and selection.selection_set is not None:
                stack.append(selection.selection_set)


def document_shape_error(document: DocumentNode) -> GraphQLError | None:
    """Why the document is too repetitive to validate, or None; one linear pass over the syntax tree.

    Run before validation: graphql-core's OverlappingFieldsCanBeMerged compares every pair of fields with one
    response name, and every pair of fragments spread, in each selection set, so its work is quadratic in these.
    """
    for selection_set in _selection_sets(document):
        names: Counter[str] = Counter()
        spreads: set[str] = set()
        for selection in _flattened(selection_set):
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                names[name] += 1
                if names[name] > MAX_REPEATED_FIELDS:
                    return GraphQLError(
                        f"The field '{name[:100]}' is selected more than {MAX_REPEATED_FIELDS} times"
                        " in one selection set.",
                        selection,
                    )
            else:
                spreads.add(selection.name.value)
                if len(spreads) > MAX_FRAGMENT_SPREADS:
                    return GraphQLError(
                        f"More than {MAX_FRAGMENT_SPREADS} fragments are spread in one selection set.", selection
                    )
    return None


@dataclass(frozen=True)
class _Reach:
    """How deep a selection set reaches: its own selections are at level 0.

    ``counted`` leaves out what is below introspection fields (as strawberry's depth limiter did); ``raw`` counts
    every field. -1: no selections. ``spreads``: (fragment, counted level or None below introspection, raw level).
    """

    counted: int
    raw: int
    spreads: tuple[tuple[str, int | None, int], ...]


def _local_reach(selection_set: SelectionSetNode) -> _Reach:
    """The reach of one definition's selections, fragment spreads left open; iterative, linear."""
    counted = raw = -1
    spreads: list[tuple[str, int | None, int]] = []
    stack: list[tuple[SelectionSetNode, int | None, int]] = [(selection_set, 0, 0)]
    while stack:
        current, level, raw_level = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                if level is not None:
                    counted = max(counted, level)
                raw = max(raw, raw_level)
                if selection.selection_set is not None:
                    introspection = selection.name.value.startswith("__")
                    child = None if level is None or introspection else level + 1
                    stack.append((selection.selection_set, child, raw_level + 1))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level, raw_level))
            elif isinstance(selection, FragmentSpreadNode):
                spreads.append((selection.name.value, level, raw_level))
    return _Reach(counted, raw, tuple(spreads))


def _resolved(reach: _Reach, fragments: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """The reach with the spreads' fragments filled in (unknown or cyclic fragments add nothing)."""
    counted, raw = reach.counted, reach.raw
    for name, level, raw_level in reach.spreads:
        known = fragments.get(name)
        if known is None:
            continue
        if level is not None:
            counted = max(counted, level + known[0])
        raw = max(raw, raw_level + known[1])
    return counted, raw


def fragment_reaches(document: DocumentNode) -> dict[str, tuple[int, int]]:
    """(counted, raw) reach of every fragment, each walked once: linear in the document, not in its expansion.

    Depth-first over the spread graph with an explicit stack (a chain of thousands of fragments must not
    recurse). A spread back into the current path (a cycle, which NoFragmentCycles reports) adds nothing.
    """
    local = {
        definition.name.value: _local_reach(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    done: dict[str, tuple[int, int]] = {}
    for root in local:
        if root in done:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path = {root}
        while stack:
            name, index = stack[-1]
            spreads = local[name].spreads
            while index < len(spreads):
                target = spreads[index][0]
                index += 1
                if target in local and target not in done and target not in on_path:
                    stack[-1] = (name, index)
                    stack.append((target, 0))
                    on_path.add(target)
                    break
            else:
                done[name] = _resolved(local[name], done)
                stack.pop()
                on_path.discard(name)
    return done


def depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """A depth limit with strawberry's semantics and message, in time linear in the document.

    strawberry's ``QueryDepthLimiter`` follows every fragment spread anew, so 30 fragments that each spread the
    next one twice take 2**30 steps (a 1.4 KB document froze the gateway). Here each fragment is walked once and
    its depth remembered. A selection at level ``max_depth + 1`` or deeper (top-level fields are level 0) is too
    deep; fields below introspection fields do not count, but every field counts towards
    ``MAX_SELECTION_NESTING`` (execution recurses once per level).
    """
    nesting = max(MAX_SELECTION_NESTING, max_depth)

    class MaxDepthRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = fragment_reaches(document)
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                counted, raw = _resolved(_local_reach(definition.selection_set), fragments)
                name = definition.name.value if definition.name else "anonymous"
                if counted > max_depth:
                    self.report_error(
                        GraphQLError(f"'{name}' exceeds maximum operation depth of {max_depth}", definition)
                    )
                elif raw > nesting:
                    self.report_error(
                        GraphQLError(
                            f"'{name}' exceeds maximum operation depth of {nesting} (introspection included)",
                            definition,
                        )
                    )

        def enter_document(self, *_args: object) -> VisitorAction:
            return SKIP  # all done in __init__: nothing to do per node

    return MaxDepthRule


def alias_rule(max_aliases: int) -> type[ASTValidationRule]:
    """At most ``max_aliases`` aliases in the document (each written alias counts once)."""

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


class BudgetedOverlappingFieldsRule(OverlappingFieldsCanBeMergedRule):
    """graphql-core's rule with a smaller work budget: over it, validation ends with "Validation aborted."

    graphql-core meters this rule (``MAX_COMPLEXITY_BUDGET``, a module-wide setting); the budget is set per
    instance here so that nothing else in the process is affected.
    """

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = OVERLAP_COMPLEXITY_BUDGET


def budgeted(rules: tuple[type[ASTValidationRule], ...]) -> tuple[type[ASTValidationRule], ...]:
    """The rules with OverlappingFieldsCanBeMerged on the gateway's budget."""
    return tuple(BudgetedOverlappingFieldsRule if rule is OverlappingFieldsCanBeMergedRule else rule for rule in rules)


# -- parsing and caching documents ---------------------------------------------------------------------------


@dataclass
class CachedDocument:
    """A parsed document and, once validated, its validation errors (validation depends only on the text)."""

    document: DocumentNode
    length: int
    errors: tuple[GraphQLError, ...] | None = None


class DocumentCache:
    """Parsed (and validated) documents by the SHA-256 of their text, bounded by count and estimated bytes.

    Only documents of at most ``CACHEABLE_DOCUMENT_LENGTH`` characters are kept, and the key is a digest, so
    neither a large nor a distinct document can make the cache hold more than ``DOCUMENT_CACHE_BYTES``
    (strawberry's ParserCache and ValidationCache are bounded by count only and keep the whole text).
    One per schema: the limits and validation rules are those of the schema.
    """

    def __init__(
        self,
        *,
        max_tokens: int,
        max_bytes: int = DOCUMENT_CACHE_BYTES,
        max_entries: int = DOCUMENT_CACHE_ENTRIES,
        cacheable_length: int = CACHEABLE_DOCUMENT_LENGTH,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_length = max_document_length(max_tokens)
        self.cacheable_length = cacheable_length
        unit = max(1, max_bytes // max_entries)  # each entry weighs at least this much: at most max_entries
        self._entries: LRUCache[bytes, CachedDocument] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: max(unit, _estimated_bytes(entry))
        )

    @property
    def parse_options(self) -> dict[str, int]:
        """graphql-core's parser limits: tokens (comments count, as with strawberry's MaxTokensLimiter) and length."""
        return {"max_tokens": self.max_tokens, "max_source_length": self.max_length}

    def key(self, query: str) -> bytes | None:
        """The cache key of a document, or None for one too long to remember."""
        if len(query) > self.cacheable_length:
            return None
        return hashlib.sha256(query.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes | None) -> CachedDocument | None:
        return None if key is None else self._entries.get(key)

    def put(self, key: bytes | None, entry: CachedDocument) -> None:
        if key is not None:
            self._entries[key] = entry  # re-set after validation: the estimate grows with the errors

    def parse(self, query: str) -> DocumentNode:
        """The parsed document, from the cache when it is there; raises GraphQLError (syntax, limits)."""
        key = self.key(query)
        cached = self.get(key)
        if cached is not None:
            return cached.document
        document = parse(query, max_tokens=self.max_tokens, max_source_length=self.max_length)
        self.put(key, CachedDocument(document, len(query)))
        return document

    def operation_type(self, query: str, operation_name: str | None) -> OperationType | None:
        """The type of the operation a cacheable document runs; None when it is too long, invalid or ambiguous."""
        if len(query) > self.cacheable_length:
            return None
        try:
            document = self.parse(query)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)
        return None if operation is None else operation.operation

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def estimated_bytes(self) -> int:
        return int(self._entries.currsize)


def max_document_length(max_tokens: int) -> int:
    """The longest document accepted: ``DOCUMENT_CHARACTERS_PER_TOKEN`` characters per allowed token."""
    return DOCUMENT_CHARACTERS_PER_TOKEN * max_tokens


def _estimated_bytes(entry: CachedDocument) -> int:
    """Memory of a cache entry, estimated from the length of its document's text (and its errors)."""
    return AST_BYTES_PER_CHARACTER * entry.length + 1024 * len(entry.errors or ())


class DocumentGuard(SchemaExtension):
    """Parses and validates within the limits above, remembering small documents in a :class:`DocumentCache`.

    Parsing stays strawberry's (so that syntax errors take strawberry's normal path, over HTTP and WebSocket
    alike): this extension hands it the limits, serves cache hits, and remembers what strawberry parsed.
    Validation is done here: the shape check first (cheap, refuses what would make validation slow), then the
    rules with OverlappingFieldsCanBeMerged on a budget; the errors are remembered with the document.
    """

    def __init__(self, documents: DocumentCache) -> None:
        self.documents = documents
        self._key: bytes | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        options = cast("dict[str, Any]", context.parse_options)
        options.update(self.documents.parse_options)
        query = context.query
        cached = None
        if query and context.graphql_document is None:
            self._key = self.documents.key(query)
            cached = self.documents.get(self._key)
            if cached is not None:
                context.graphql_document = cached.document
        yield
        for error in context.pre_execution_errors or ():
            # strawberry keeps the syntax error in the execution context, which the frames of the error's
            # traceback hold: a reference cycle that lived (with the document's source and tokens) until a full
            # garbage collection, so distinct invalid documents grew the process steadily.
            error.__traceback__ = None
        if cached is None and query and context.graphql_document is not None:
            self.documents.put(self._key, CachedDocument(context.graphql_document, len(query)))

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            cached = self.documents.get(self._key)
            if cached is not None and cached.errors is not None:
                errors = list(cached.errors)
            else:
                shape_error = document_shape_error(document)
                if shape_error is not None:
                    errors = [shape_error]
                else:
                    errors = validate_document(context.schema._schema, document, budgeted(context.validation_rules))
                # Coded here, not only by ErrorCodes at the end of the operation: over WebSocket the errors are
                # sent before that. Validation errors do not depend on the request (no request id in them).
                errors = [classify(error, "-") for error in errors]
                if cached is not None:
                    cached.errors = tuple(errors)
                    self.documents.put(self._key, cached)
            context.pre_execution_errors = errors
        yield


def document_guard(documents: DocumentCache) -> Callable[[], DocumentGuard]:
    """The extension factory strawberry calls per request; all requests share ``documents``."""
    return lambda: DocumentGuard(documents)
