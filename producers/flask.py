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
        destination="eu",          # optional: the ActiveCampaign account, by name
    )

Config keys, all optional. Missing ones come from the environment variables of the same
names and their defaults: CONTACT_SYNC_REDIS_URL, CONTACT_SYNC_KEY_PREFIX,
CONTACT_SYNC_PRODUCER_MIN_REPLICAS, CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS. Config only:
CONTACT_SYNC_SOURCE, and CONTACT_SYNC_DESTINATION, the destination (ActiveCampaign
account) of the calls that name none; without it they go to ``default``.
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
from worker.destinations import DESTINATION_ERROR, DESTINATION_NAME
from worker.errors import ConfigError
from worker.settings import Settings

__all__ = ["ContactSync"]

EXTENSION_KEY = "contact_sync"
#: app.extensions key of CONTACT_SYNC_DESTINATION, checked by init_app (None: ``default``).
DESTINATION_KEY = "contact_sync.destination"


class ContactSync:
    """The Flask extension. ``init_app`` may be called for any number of apps."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build this app's producer and store it in ``app.extensions["contact_sync"]``.

        Raises ConfigError when CONTACT_SYNC_DESTINATION is not a destination name.
        """
        config = app.config
        destination = config.get("CONTACT_SYNC_DESTINATION")
        if destination is not None and not (
            isinstance(destination, str) and DESTINATION_NAME.fullmatch(destination)
        ):
            raise ConfigError("CONTACT_SYNC_DESTINATION", DESTINATION_ERROR)
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
        app.extensions[DESTINATION_KEY] = destination

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

    @staticmethod
    def _default_destination() -> str | None:
        """The current app's CONTACT_SYNC_DESTINATION (``None``: ``default``)."""
        destination: str | None = current_app.extensions.get(DESTINATION_KEY)
        return destination

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
        destination: str | None = None,
    ) -> str:
        """``ContactSyncProducer.contact_changed`` on the current app's producer: ``fields``
        by id, ``"%PERSTAG%"`` or title, ``tags`` {name: True adds, False removes}, ``lists``
        {id or name: "subscribed" | "unsubscribed"}, ``account`` ("" unlinks),
        ``destination`` the ActiveCampaign account by name (``None``: the app's
        CONTACT_SYNC_DESTINATION, else ``default``)."""
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
            destination=self._default_destination() if destination is None else destination,
        )

    def send_many(
        self,
        contacts: Iterable[Mapping[str, Any]],
        *,
        occurred_at: dt.datetime | None = None,
        source: str | None = None,
        destination: str | None = None,
    ) -> int:
        """``ContactSyncProducer.send_many`` on the current app's producer.

        A dict's own ``"destination"`` wins; a dict without one (or with ``None``) goes to
        ``destination``, else the app's CONTACT_SYNC_DESTINATION, else ``default``.
        """
        destination = self._default_destination() if destination is None else destination
        if destination is not None:
            contacts = (
                {**contact, "destination": destination}
                if isinstance(contact, Mapping) and contact.get("destination") is None
                else contact
                for contact in contacts
            )
        return self.producer.send_many(contacts, occurred_at=occurred_at, source=source)
