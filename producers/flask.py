"""Flask integration: one producer per app, configured from ``app.config``.

    contact_sync = ContactSync()          # module level, for the app-factory pattern

    def create_app():
        app = Flask(__name__)
        app.config["CONTACT_SYNC_KEY_PREFIX"] = "contact-sync"
        contact_sync.init_app(app)
        return app

    # in a view
    contact_sync.contact_changed(
        form["email"],
        first_name=form["first_name"],
        tags={"trial": True},
        lists={"Newsletter": "subscribed"},
        account=form["company"],
    )

Config keys (all optional; missing ones come from the environment variables of the
same names and their defaults): CONTACT_SYNC_REDIS_URL, CONTACT_SYNC_KEY_PREFIX,
CONTACT_SYNC_SOURCE.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

try:
    from flask import Flask, current_app
except ImportError as exc:  # pragma: no cover - exercised only where Flask is absent
    raise ImportError("producers.flask needs Flask: pip install 'contact-sync[flask]'") from exc

from producers._producer import ContactSyncProducer
from worker.settings import Settings

__all__ = ["ContactSync"]

EXTENSION_KEY = "contact_sync"


class ContactSync:
    """The Flask extension. ``init_app`` may be called for any number of apps."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build this app's producer and store it in ``app.extensions["contact_sync"]``."""
        config = app.config
        names = ("REDIS_URL", "KEY_PREFIX", "PRODUCER_MIN_REPLICAS", "PRODUCER_WAIT_TIMEOUT_MS")
        given = {name: config.get(f"CONTACT_SYNC_{name}") for name in names}
        # Only read the environment for what the app leaves out: a fully configured app does
        # not depend on it.
        env = Settings.from_env() if None in given.values() else Settings()
        min_replicas = given["PRODUCER_MIN_REPLICAS"]
        wait_timeout_ms = given["PRODUCER_WAIT_TIMEOUT_MS"]
        app.extensions[EXTENSION_KEY] = ContactSyncProducer(
            env.redis_url if given["REDIS_URL"] is None else given["REDIS_URL"],
            env.key_prefix if given["KEY_PREFIX"] is None else given["KEY_PREFIX"],
            source=config.get("CONTACT_SYNC_SOURCE"),
            min_replicas=env.producer_min_replicas if min_replicas is None else int(min_replicas),
            wait_timeout_ms=(
                env.producer_wait_timeout_ms if wait_timeout_ms is None else int(wait_timeout_ms)
            ),
        )

    @property
    def producer(self) -> ContactSyncProducer:
        """The current app's producer. Needs an app context."""
        try:
            producer: ContactSyncProducer = current_app.extensions[EXTENSION_KEY]
        except KeyError:
            raise RuntimeError(
                "ContactSync is not initialised for this app: call init_app(app)"
            ) from None
        return producer

    def contact_changed(
        self,
        email: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        fields: Mapping[int | str, Any] | None = None,
        tags: Mapping[str, bool] | None = None,
        lists: Mapping[int | str, str] | None = None,
        account: str | None = None,
        occurred_at: dt.datetime | None = None,
        source: str | None = None,
    ) -> str:
        """``ContactSyncProducer.contact_changed`` on the current app's producer: ``fields``
        by id, ``"%PERSTAG%"`` or title, ``tags`` {name: True adds, False removes}, ``lists``
        {id or name: "subscribed" | "unsubscribed"}, ``account`` ("" unlinks)."""
        return self.producer.contact_changed(
            email,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            fields=fields,
            tags=tags,
            lists=lists,
            account=account,
            occurred_at=occurred_at,
            source=source,
        )

    def send_many(
        self,
        contacts: Iterable[Mapping[str, Any]],
        *,
        occurred_at: dt.datetime | None = None,
        source: str | None = None,
    ) -> int:
        """``ContactSyncProducer.send_many`` on the current app's producer."""
        return self.producer.send_many(contacts, occurred_at=occurred_at, source=source)
