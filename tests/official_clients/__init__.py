"""The official ProcessCube clients, unchanged, against the embedded engine.

``@5minds/processcube_engine_client`` 6.1.4 (npm, with ``@5minds/processcube_engine_sdk`` 7.1.2) and
``processcube-client`` 6.1.2 (PyPI) are installed by ``make install`` (package-lock.json, requirements/dev.txt).
Each capability has a test file; the tests run driver scripts (``drivers/``) in subprocesses against a real embedded
engine (one per test module) and assert on the JSON they print. Models are in ``models/``, in 5Minds Studio's dialect.
"""
