"""contact-sync's worker side. ``celery -A worker worker`` finds the Celery ``app`` here.

The app is imported lazily (PEP 562), so that producers can import the shared schema,
settings and errors from this package without importing Celery's worker machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
