"""The public surface: each package's and module's __all__ names things that exist."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import types
from importlib import metadata
from pathlib import Path

import pytest

import producers
import worker
import worker.cli

# Sub-packages too: worker.cli and its modules.
WORKER_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(worker.__path__, prefix="worker.")
)


def test_worker_exports_only_the_celery_app() -> None:
    """The worker package's public surface is exactly the Celery app."""
    assert worker.__all__ == ["app"]


def test_worker_app_is_built_from_the_environment_on_first_access(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """worker.app is built lazily, once, by app_from_env, and carries the environment's settings."""
    from worker.celery_app import ContactSyncCelery

    monkeypatch.setattr(worker, "_app", None)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", "from-env")
    app = worker.app
    assert isinstance(app, ContactSyncCelery)
    assert app.settings.key_prefix == "from-env"
    assert worker.app is app
    assert {"contact_sync.sync_contact", "contact_sync.pump"} <= set(app.tasks)


def test_importing_the_worker_modules_reads_no_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing any worker module builds no app and never exits, even with a broken environment."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, worker\n"
        "for info in pkgutil.walk_packages(worker.__path__, prefix='worker.'):\n"
        "    importlib.import_module(info.name)\n"
        "assert worker._app is None\n"
        "import celery.apps.worker as w\n"
        "assert w.safe_say.__module__ == 'celery.apps.worker', 'patched at import'\n"
        "print('ok')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "CONTACT_SYNC_REDIS_URL": "not a url"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


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
    """The module walk below sees the documented modules, the CLI's among them."""
    for name in ("settings", "errors", "schema", "store", "ratelimit", "backoff", "client"):
        assert f"worker.{name}" in WORKER_MODULES
    for name in ("app", "importer", "import_source", "render", "progress"):
        assert f"worker.cli.{name}" in WORKER_MODULES


def test_cli_exports_only_main() -> None:
    """worker.cli's public surface is exactly main(); its submodules are not names."""
    assert worker.cli.__all__ == ["main"]
    public = {
        name
        for name, value in vars(worker.cli).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations"} == {"main"}  # from __future__ import annotations


@pytest.mark.parametrize(
    "module_name", [name for name in WORKER_MODULES if not f"{name}.".startswith("worker.cli.")]
)
def test_engine_modules_never_import_the_cli(module_name: str) -> None:
    """No engine module imports worker.cli: the operator tools sit on the engine, not in it."""
    spec = importlib.util.find_spec(module_name)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text("utf-8"))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    imported += [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    ]
    assert [name for name in imported if f"{name}.".startswith("worker.cli.")] == []


def test_console_script_runs_worker_cli_main() -> None:
    """The installed `contact-sync` script's entry point is worker.cli:main."""
    (script,) = metadata.entry_points(group="console_scripts", name="contact-sync")
    assert script.value == "worker.cli:main"
    assert script.load() is worker.cli.main


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
