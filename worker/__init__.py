"""contact-sync's worker side. ``celery -A worker worker`` finds the Celery ``app`` here.

Importing the package does nothing: ``app`` is built on first access (PEP 562) from the
environment, by ``worker.celery_app.app_from_env``. Producers import the shared schema,
settings and errors from this package without building an app or importing Celery's
worker machinery. Code that has settings of its own calls ``create_app(settings)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.celery_app import ContactSyncCelery

    app: ContactSyncCelery

__all__ = ["app"]

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            from worker.celery_app import app_from_env

            _app = app_from_env()
        return _app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
