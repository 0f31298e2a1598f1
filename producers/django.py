"""Django integration: enqueue contact changes when the surrounding transaction commits.

    # settings.py (every key is optional; missing ones come from the environment)
    CONTACT_SYNC = {"REDIS_URL": "redis://...", "SOURCE": "django:web"}
    # and "DESTINATION": "eu", the ActiveCampaign account of calls that name none ("default")

    # anywhere in a request
    from producers.django import contact_changed_on_commit
    contact_changed_on_commit(
        user.email, first_name=user.first_name, tags={"trial": True}, account="Acme Inc"
    )

    # or once, e.g. in AppConfig.ready(): model attributes feed fields, tags, lists, account
    from producers.django import sync_on_save
    sync_on_save(
        Customer,
        first_name="first_name",
        fields={"%BIRTHDAY%": "birthday"},
        tags={"trial": "is_trial"},                  # truthy adds the tag, falsy removes it
        lists={"Newsletter": "wants_newsletter"},    # truthy subscribes, falsy unsubscribes
        account="company",                           # "" unlinks the company
        destination="billing",                       # a destination's name, not an attribute
    )

Writing only after commit means a rolled-back transaction never reports a change that
did not happen, and a worker never reads a change before the database shows it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

try:
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.db import transaction
    from django.db.models import Model
    from django.db.models.signals import post_save
except ImportError as exc:  # pragma: no cover - exercised only where Django is absent
    raise ImportError("producers.django needs Django: pip install 'contact-sync[django]'") from exc

from producers._producer import ContactSyncProducer
from worker.destinations import DESTINATION_ERROR, DESTINATION_NAME
from worker.errors import ConfigError
from worker.settings import Settings

__all__ = ["contact_changed_on_commit", "get_producer", "sync_on_save"]

_SETTING = "CONTACT_SYNC"
_KEYS = frozenset(
    {"REDIS_URL", "KEY_PREFIX", "SOURCE", "DESTINATION", "MIN_REPLICAS", "WAIT_TIMEOUT_MS"}
)

#: Names a model attribute, or computes the value from the instance.
AttributeSource = str | Callable[[Any], Any]
#: A destination's name, or computes it (or None: the default) from the instance.
DestinationSource = str | Callable[[Any], str | None]

_lock = threading.Lock()
# The producer and CONTACT_SYNC["DESTINATION"], built together from one reading of the setting.
_configured: tuple[ContactSyncProducer, str | None] | None = None


def get_producer() -> ContactSyncProducer:
    """The process-wide producer built from ``settings.CONTACT_SYNC``, created on first use.

    Missing keys fall back to CONTACT_SYNC_REDIS_URL and CONTACT_SYNC_KEY_PREFIX (and their
    defaults). Raises ConfigError when the setting is malformed.
    """
    return _configuration()[0]


def _configuration() -> tuple[ContactSyncProducer, str | None]:
    """The producer and the default destination (``None``: ``default``)."""
    global _configured
    configured = _configured
    if configured is None:
        with _lock:
            if _configured is None:
                _configured = _configure()
            configured = _configured
    return configured


def _configure() -> tuple[ContactSyncProducer, str | None]:
    producer = _build_producer()  # checks the setting's shape and keys first
    destination = (getattr(settings, _SETTING, None) or {}).get("DESTINATION")
    if destination is not None and not (
        isinstance(destination, str) and DESTINATION_NAME.fullmatch(destination)
    ):
        producer.close()
        raise ConfigError(f"settings.{_SETTING}['DESTINATION']", DESTINATION_ERROR)
    return producer, destination


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
    min_replicas = config.get("MIN_REPLICAS")
    wait_timeout_ms = config.get("WAIT_TIMEOUT_MS")
    env = Settings()  # the defaults
    if None in (redis_url, key_prefix, min_replicas, wait_timeout_ms):
        # Only now read the environment: a fully configured app does not depend on it.
        env = Settings.from_env()
    return ContactSyncProducer(
        env.redis_url if redis_url is None else redis_url,
        env.key_prefix if key_prefix is None else key_prefix,
        source=config.get("SOURCE"),
        min_replicas=env.producer_min_replicas if min_replicas is None else int(min_replicas),
        wait_timeout_ms=(
            env.producer_wait_timeout_ms if wait_timeout_ms is None else int(wait_timeout_ms)
        ),
    )


def _reset_producer(*, setting: str, **kwargs: Any) -> None:
    global _configured
    if setting != _SETTING:
        return
    with _lock:
        old, _configured = _configured, None
    if old is not None:
        old[0].close()


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
    tags: Mapping[str, bool] | None = None,
    lists: Mapping[int | str, str] | None = None,
    account: str | None = None,
    occurred_at: dt.datetime | None = None,
    source: str | None = None,
    destination: str | None = None,
) -> str:
    """Validate a change now and enqueue it when the transaction on ``using`` commits.

    Arguments are those of ``ContactSyncProducer.contact_changed``: ``fields`` by id,
    ``"%PERSTAG%"`` or title, ``tags`` {name: True adds, False removes}, ``lists`` {id or
    name: "subscribed" | "unsubscribed"}, ``account`` ("" unlinks); ``occurred_at``
    defaults to the time of this call. ``destination`` names the ActiveCampaign account;
    ``None`` means ``CONTACT_SYNC["DESTINATION"]``, or ``default`` without it (a name the
    workers do not know is dead-lettered as ``unknown_destination``). Returns the event id
    at once. A bad call raises InvalidContactEvent here, inside the request. Outside a
    transaction (autocommit) the event is written immediately; after a rollback it is never
    written.

    If Redis cannot be reached at commit time, EnqueueError propagates out of the commit
    (the ``atomic()`` exit, or this call in autocommit). The data is committed by then and
    the event is not: swallowing the error would lose the change without a trace, while
    raising it surfaces a 500 and an error report that names the event id. As with any
    raising ``on_commit`` callback, Django skips the callbacks registered after it.
    """
    producer, default_destination = _configuration()
    prepared = producer.prepare_change(
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
        destination=default_destination if destination is None else destination,
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
    tags: Mapping[str, AttributeSource] | None = None,
    lists: Mapping[int | str, AttributeSource] | None = None,
    account: AttributeSource | None = None,
    destination: DestinationSource | None = None,
    dispatch_uid: str | None = None,
) -> Callable[..., None]:
    """Report every save of ``model`` as a contact change, enqueued on commit.

    Each option names an attribute of the instance or is a callable taking the instance.
    ``fields`` maps a custom field's id, ``"%PERSTAG%"`` or title to such a source;
    ``tags`` a tag name, and ``lists`` a list's id or name. A value of ``None`` is always
    left out ("unchanged"), so a callable can say "leave it alone". Otherwise:

    - a tag is added when its value is truthy and removed when it is falsy;
    - a list is subscribed when its value is truthy and unsubscribed when it is falsy,
      except that the strings ``"subscribed"`` and ``"unsubscribed"`` are sent as they are;
    - ``account`` is the company's name, and ``""`` (a blank ``CharField``) unlinks the
      contact from its company, as a blank ``first_name`` clears the name. To leave the
      company alone when the attribute is blank, use ``lambda obj: obj.company or None``.

    ``destination`` is the exception to the rule above: a string is the name of the
    destination (the ActiveCampaign account) every save goes to, not an attribute; a callable
    computes the name from the instance (``lambda obj: obj.region``). ``None``, given or
    returned, means ``CONTACT_SYNC["DESTINATION"]``, or ``default`` without it. A malformed
    name is a ValueError here; one from a callable, InvalidContactEvent from ``save()``.

    An instance whose email is ``None`` or ``""`` is not a contact and is skipped. Raw
    saves (fixture loading) are skipped. Values must be what ``contact_changed`` accepts
    (fields: str, list of str, date, aware datetime; account: str): convert others with a
    callable. An invalid value raises InvalidContactEvent from ``save()``.

    Returns the receiver; disconnect it with
    ``post_save.disconnect(receiver, sender=model, dispatch_uid=dispatch_uid)``.
    """
    field_sources = _sources("fields", fields)
    tag_sources = _sources("tags", tags)
    list_sources = _sources("lists", lists)
    if not (
        destination is None
        or callable(destination)
        or (isinstance(destination, str) and DESTINATION_NAME.fullmatch(destination))
    ):
        # A fixed name: fail once, at start, instead of in every save().
        raise ValueError(f"sync_on_save(destination={destination!r}): {DESTINATION_ERROR}")

    def receiver(
        sender: type[Model], instance: Model, raw: bool = False, using: str | None = None, **_: Any
    ) -> None:
        if raw:
            return
        address = _read(instance, email)
        if address is None or address == "":
            return
        contact_changed_on_commit(
            address,
            using=using,
            first_name=_read(instance, first_name),
            last_name=_read(instance, last_name),
            phone=_read(instance, phone),
            fields=_read_each(instance, field_sources, _as_is),
            tags=_read_each(instance, tag_sources, bool),
            lists=_read_each(instance, list_sources, _list_status),
            account=_read(instance, account),
            destination=destination(instance) if callable(destination) else destination,
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


_Ref = TypeVar("_Ref", bound=int | str)
_Value = TypeVar("_Value")


def _sources(option: str, sources: Mapping[_Ref, Any] | None) -> dict[_Ref, AttributeSource]:
    """The mapping as a dict; TypeError, at registration, for a source that is neither an
    attribute name nor a callable."""
    checked = dict(sources or {})
    for ref, source in checked.items():
        # tags={"trial": True} reads like contact_changed's argument; without this check it
        # would fail in every save() instead of once, at start.
        if not (isinstance(source, str) or callable(source)):
            raise TypeError(
                f"sync_on_save({option}=...): {ref!r} maps to {source!r}, which is neither a "
                f"model attribute's name nor a callable; for a constant use lambda obj: {source!r}"
            )
    return checked


def _read_each(
    instance: Model,
    sources: Mapping[_Ref, AttributeSource],
    convert: Callable[[Any], _Value],
) -> dict[_Ref, _Value] | None:
    """Each source's value, converted; ``None`` values are left out, and so is an empty result."""
    values = {ref: _read(instance, source) for ref, source in sources.items()}
    return {ref: convert(value) for ref, value in values.items() if value is not None} or None


def _as_is(value: Any) -> Any:
    return value


_LIST_STATUSES = frozenset({"subscribed", "unsubscribed"})


def _list_status(value: Any) -> str:
    # The exact statuses pass through: "unsubscribed" is truthy, and reading it as
    # "subscribed" would do the opposite of what a status column or callable says.
    if isinstance(value, str) and value in _LIST_STATUSES:
        return value
    return "subscribed" if value else "unsubscribed"
