"""The public surface: each package's and module's __all__ names things that exist."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import producers
import worker

WORKER_MODULES = sorted(
    info.name for info in pkgutil.iter_modules(worker.__path__, prefix="worker.")
)


def test_worker_exports_only_the_celery_app() -> None:
    """The worker package's public surface is exactly the Celery app."""
    assert worker.__all__ == ["app"]


def test_worker_app_is_the_celery_app() -> None:
    """worker.app resolves lazily to the Celery app of worker.celery_app."""
    from celery import Celery

    from worker.celery_app import app

    assert worker.app is app
    assert isinstance(app, Celery)


def test_worker_rejects_unknown_attributes() -> None:
    """An unknown attribute of the worker package raises AttributeError naming it."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = worker.no_such_thing  # type: ignore[attr-defined]


def test_producers_names_are_importable() -> None:
    """Every name in producers.__all__ exists in the package."""
    assert producers.__all__ == ["ContactSyncProducer", "EnqueueError", "InvalidContactEvent"]
    for name in producers.__all__:
        assert getattr(producers, name) is not None


def test_worker_modules_are_found() -> None:
    """The module walk below sees the documented modules."""
    for name in ("settings", "errors", "schema", "store", "ratelimit", "backoff", "client"):
        assert f"worker.{name}" in WORKER_MODULES


@pytest.mark.parametrize("module_name", WORKER_MODULES)
def test_worker_module_all_names_exist(module_name: str) -> None:
    """Every name a worker module lists in __all__ is defined, and listed only once."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{module_name} has no __all__")
    assert len(exported) == len(set(exported))
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []
