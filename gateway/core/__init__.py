"""The core: what the gateway does, with no HTTP, GraphQL or httpx in it.

- ``domain``: user tasks, filters, sorts, pages, results as plain frozen dataclasses.
- ``errors``: the one exception tree, each error with its stable code.
- ``ports``: what the core needs from an engine (the ``Engine`` protocol); adapters implement it.
- ``service``: the use cases (``TaskService``): plan a query, page, look up, reserve, finish, batch.
- ``limits``: every input limit, checked once for both faces.
- ``filtering``, ``tokens``, ``cursor``, ``results``: the rules the service applies (which part of a filter the
  engine can do, token paths and comparisons, signed keyset cursors, results checked against the form).
- ``cache``, ``idempotency``: the read cache with single flight, and the store that makes writes retry-safe.
"""
