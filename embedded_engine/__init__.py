"""A ProcessCube-compatible engine (SpiffWorkflow + SQLite + an OAuth authority) for development and tests.

It speaks the real ProcessCube engine's HTTP API (``docs/engine.md``; what else a process waits for in
``docs/engine-reach.md``), so the gateway, and the official ProcessCube clients, reach it exactly as they reach a
real engine: over HTTP, with OAuth tokens, Socket.IO and long polling.

The modules, from the outside in:

- ``__main__``: ``python -m embedded_engine``, the command line that starts the server (uvicorn).
- ``app``: the HTTP face: routes under ``/atlas_engine/api/v1``, input validation, the app factory.
- ``core``: the use cases (deploy, start, query, reserve, finish, terminate; manual and untyped tasks, message and
  signal triggers, due timers) and the contract's rules.
- ``event_routes``: the HTTP routes of manual and untyped tasks, message, signal and timer triggers.
- ``timers``: the alarm clock that wakes the core when the earliest stored BPMN timer is due.
- ``wire``: the engine's JSON: store rows and snapshots rendered as the real engine serializes them.
- ``errors``: the real engine's error shape, and the exception handlers that answer in it.
- ``identity``: who is calling (tokens to identities), their scopes, and the lanes they may see.
- ``authority``: the OAuth 2.0 authority: token endpoint, discovery, JWKS, clients, token verification.
- ``events``: notifications: the event bus, long polling and Socket.IO.
- ``external_tasks``: the external task API workers use (fetch_and_lock, extend_lock, finish, error), see
  ``docs/external-tasks.md``.
- ``store``: SQLite persistence: definitions, instances, flow node instances, what instances wait for, external
  tasks, group commits.
- ``bpmn``: parsing and running BPMN models with SpiffWorkflow (a package; its docstring maps its modules).
- ``js``: the JavaScript sandbox that conditions and script tasks run in, never as Python.
- ``js_worker``: the sandbox's worker process, one V8 isolate each.
- ``demo``: demo data for ``--demo``: the example models deployed, a few instances started.
"""
