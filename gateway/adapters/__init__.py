"""Adapters: the core's ports implemented over the outside world.

- ``client_engine``: the ``Engine`` port over :class:`gateway.engine.UserTaskClient` (engine JSON -> domain,
  client exceptions -> the core's errors).
- ``identity``: who is calling: bearer JWTs verified against the authority's keys.
- ``embedded_engine``: starting and supervising the embedded engine when no engine URL is configured.
"""
