"""Django integration: enqueue contact changes when the surrounding transaction commits.

    # settings.py (every key is optional; missing ones come from the environment)
    CONTACT_SYNC = {"REDIS_URL": "redis://...", "SOURCE": "django:web"}

    # anywhere in a request
    from producers.django import contact_changed_on_commit
    contact_changed_on_commit(user.email, first_name=user.first_name)

    # or once, e.g. in AppConfig.ready()
    from producers.django import sync_on_save
    sync_on_save(Customer, first_name="first_name", fields={6: "birthday"})

Writing only after commit means a rolled-back transaction never reports a change that
did not happen, and a worker never reads a change before the database shows it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any

try:
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.db import transaction
    from django.db.models import Model
    from django.db.models.signals import post_save
except ImportError as exc:  # pragma: no cover - exercised only where Django is absent
    raise ImportError("producers.django needs Django: pip install 'contact-sync[django]'") from exc

from producers._producer import ContactSyncProducer
from worker.errors import ConfigError
from worker.settings import Settings

__all__ = ["contact_changed_on_commit", "get_producer", "sync_on_save"]

_SETTING = "CONTACT_SYNC"
_KEYS = frozenset({"REDIS_URL", "KEY_PREFIX", "SOURCE"})

#: Names a model attribute, or computes the value from the instance.
AttributeSource = str | Callable[[Any], Any]

_lock = threading.Lock()
_producer: ContactSyncProducer | None = None


def get_producer() -> ContactSyncProducer:
    """The process-wide producer built from ``settings.CONTACT_SYNC``, created on first use.

    Missing keys fall back to CONTACT_SYNC_REDIS_URL and CONTACT_SYNC_KEY_PREFIX (and their
    defaults). Raises ConfigError when the setting is malformed.
    """
    global _producer
    producer = _producer
    if producer is None:
        with _lock:
            if _producer is None:
                _producer = _build_producer()
            producer = _producer
    return producer


def _build_producer() -> ContactSyncProducer:
    config = getattr(settings, _SETTING, None) or {}
    if not isinstance(config, Mapping):
        raise ConfigError(f"settings.{_SETTING}", "must be a dict")
    unknown = sorted(set(config) - _KEYS)
    if unknown:
        raise ConfigError(
            f"settings.{_SETTING}",
            f"unknown keys {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(_KEYS))}",
        )
    redis_url = config.get("REDIS_URL")
    key_prefix = config.get("KEY_PREFIX")
    if redis_url is None or key_prefix is None:
        # Only now read the environment: a fully configured app does not depend on it.
        env = Settings.from_env()
        redis_url = env.redis_url if redis_url is None else redis_url
        key_prefix = env.key_prefix if key_prefix is None else key_prefix
    return ContactSyncProducer(redis_url, key_prefix, source=config.get("SOURCE"))


def _reset_producer(*, setting: str, **kwargs: Any) -> None:
    global _producer
    if setting != _SETTING:
        return
    with _lock:
        old, _producer = _producer, None
    if old is not None:
        old.close()


# setting_changed fires from override_settings, i.e. in tests; production settings never change.
setting_changed.connect(_reset_producer, dispatch_uid="producers.django.reset_producer")


def contact_changed_on_commit(
    email: str,
    *,
    using: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    phone: str | None = None,
    fields: Mapping[int | str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
    source: str | None = None,
) -> str:
    """Validate a change now and enqueue it when the transaction on ``using`` commits.

    Arguments are those of ``ContactSyncProducer.contact_changed``; ``occurred_at``
    defaults to the time of this call. Returns the event id at once. A bad call raises
    InvalidContactEvent here, inside the request. Outside a transaction (autocommit) the
    event is written immediately; after a rollback it is never written.

    If Redis cannot be reached at commit time, EnqueueError propagates out of the commit
    (the ``atomic()`` exit, or this call in autocommit). The data is committed by then and
    the event is not: swallowing the error would lose the change without a trace, while
    raising it surfaces a 500 and an error report that names the event id. As with any
    raising ``on_commit`` callback, Django skips the callbacks registered after it.
    """
    producer = get_producer()
    prepared = producer.prepare_change(
        email,
        first_name=first_name,
        last_name=last_name,
        phone=phone,
        fields=fields,
        occurred_at=occurred_at,
        source=source,
    )
    transaction.on_commit(lambda: producer.write_prepared(prepared), using=using)
    return prepared.id


def sync_on_save(
    model: type[Model],
    *,
    email: AttributeSource = "email",
    first_name: AttributeSource | None = None,
    last_name: AttributeSource | None = None,
    phone: AttributeSource | None = None,
    fields: Mapping[int | str, AttributeSource] | None = None,
    dispatch_uid: str | None = None,
) -> Callable[..., None]:
    """Report every save of ``model`` as a contact change, enqueued on commit.

    Each option names an attribute of the instance or is a callable taking the instance;
    ``fields`` maps custom field ids to such sources. Attributes whose value is ``None``
    are left out ("unchanged"); an instance whose email is ``None`` or ``""`` is not a
    contact and is skipped. Raw saves (fixture loading) are skipped. Values must be what
    ``contact_changed`` accepts (str, list of str, date, aware datetime): convert others
    with a callable. An invalid value raises InvalidContactEvent from ``save()``.

    Returns the receiver; disconnect it with
    ``post_save.disconnect(receiver, sender=model, dispatch_uid=dispatch_uid)``.
    """
    field_sources = dict(fields or {})

    def receiver(
        sender: type[Model], instance: Model, raw: bool = False, using: str | None = None, **_: Any
    ) -> None:
        if raw:
            return
        address = _read(instance, email)
        if address is None or address == "":
            return
        values = {fid: _read(instance, src) for fid, src in field_sources.items()}
        contact_changed_on_commit(
            address,
            using=using,
            first_name=_read(instance, first_name),
            last_name=_read(instance, last_name),
            phone=_read(instance, phone),
            fields={fid: value for fid, value in values.items() if value is not None},
        )

    # weak=False: the receiver is a closure that nothing else keeps alive.
    post_save.connect(receiver, sender=model, weak=False, dispatch_uid=dispatch_uid)
    return receiver


def _read(instance: Model, source: AttributeSource | None) -> Any:
    if source is None:
        return None
    if callable(source):
        return source(instance)
    return getattr(instance, source)
