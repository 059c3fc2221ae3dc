from __future__ import annotations

import inspect
import subprocess
import sys

import gateway.engine
from gateway.engine import ProcessCubeException, errors


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = gateway.engine.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert hasattr(gateway.engine, name), name


def test_every_public_name_of_the_package_is_in_all() -> None:
    public = {
        name
        for name, value in vars(gateway.engine).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(gateway.engine.__all__)


def test_every_exception_class_is_exported() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, ProcessCubeException)
    }
    assert classes <= set(gateway.engine.__all__)


def test_exception_tree_docstring_draws_every_exception_class() -> None:
    doc = errors.__doc__ or ""
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, ProcessCubeException):
            assert name in doc, name


def test_importing_the_package_creates_no_event_loop_and_warns_nothing() -> None:
    code = (
        "import asyncio, gateway.engine, gateway.engine.client, gateway.engine.events;"
        "assert asyncio.get_event_loop_policy()._local._loop is None;"
        "import sys; assert 'socketio' not in sys.modules"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
