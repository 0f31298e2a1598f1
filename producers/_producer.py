"""The producer: validate a contact change and append it to the events stream."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import redis

from worker.errors import EnqueueError, InvalidContactEvent
from worker.keys import Keys
from worker.redis_client import connect
from worker.schema import encode_event
from worker.settings import Settings

__all__ = ["MAX_CHUNK", "ContactSyncProducer", "PreparedEvent"]

#: The most events one script call appends. A call runs atomically, so this also bounds how
#: long one write keeps every other Redis client waiting.
MAX_CHUNK = 1000
# One XADD per argument, in order, in one round trip. A pipeline of 1,000 XADDs costs
# redis-py about 17 µs per event to pack and parse; this script about 6 µs (make bench).
_XADD_MANY = """
-- KEYS[1] events stream; ARGV: encoded events. Appends each as `event`, in order.
-- Guarantees: runs atomically, and the XADDs differ only in their value, so a call appends
-- all of ARGV, or none of it when the first XADD fails (wrong key type, out of memory).
for n = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'event', ARGV[n]) end
return #ARGV
"""
# Read through an instance: Settings is a slotted dataclass, so its class attributes are
# slot descriptors, not the defaults.
_DEFAULTS = Settings()


def _event_ids(block: int = 1000) -> Iterator[str]:
    """Random version-4 UUIDs as text, from one ``os.urandom`` call per ``block`` of them.

    ``str(uuid.uuid4())`` makes a system call and a UUID object per id (about 3.5 µs);
    this about 1 µs (tests/producers/test_producer.py checks version, variant and form).
    """
    while True:
        digits = os.urandom(16 * block).hex()
        for start in range(0, len(digits), 32):
            h = digits[start : start + 32]
            variant = "89ab"[int(h[16], 16) & 3]
            yield f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _encode(
    contact: Mapping[str, Any],
    *,
    occurred_at: dt.datetime | None,
    source: str | None,
    event_id: str | None = None,
    destination: str | None = None,
) -> tuple[str, str]:
    """``encode_event`` for a producer's contact, which may give ``fields`` as a mapping
    and its ``destination`` as a key (``send_many``'s dicts).

    Raises InvalidContactEvent; errors in ``fields`` are keyed by the reference as given.
    """
    if isinstance(contact, Mapping) and "destination" in contact:
        destination = contact["destination"]
        contact = {key: value for key, value in contact.items() if key != "destination"}
    options: dict[str, Any] = {"occurred_at": occurred_at, "source": source, "event_id": event_id}
    if destination is not None:
        options["destination"] = destination
    if not isinstance(contact, Mapping) or "fields" not in contact:
        # The API's own shape, or not a contact at all: the schema says what is wrong.
        return encode_event(contact, **options)
    given = contact["fields"]
    if "fieldValues" in contact:
        raise InvalidContactEvent({"fields": ["Give fields or fieldValues, not both."]})
    if not isinstance(given, Mapping):
        # Without this a list or a str fails with AttributeError on .items().
        raise InvalidContactEvent(
            {"fields": ["Must be a mapping of field id, %PERSTAG% or title to value."]}
        )
    api_contact = {key: value for key, value in contact.items() if key != "fields"}
    if given:
        api_contact["fieldValues"] = [{"field": ref, "value": val} for ref, val in given.items()]
    try:
        return encode_event(api_contact, **options)
    except InvalidContactEvent as exc:
        raise InvalidContactEvent(_keyed_by_reference(exc.messages, list(given))) from None


def _keyed_by_reference(messages: Any, refs: Sequence[Any]) -> Any:
    """Validation messages with ``fieldValues`` item indexes replaced by the references the
    caller wrote, under ``fields``: ``{"fields": {"%SHIRT SIZE%": {"field": [...]}}}``."""
    if not isinstance(messages, Mapping) or "fieldValues" not in messages:
        return messages
    keyed = {key: value for key, value in messages.items() if key != "fieldValues"}
    errors = messages["fieldValues"]
    if isinstance(errors, Mapping):
        errors = {
            refs[key] if isinstance(key, int) and 0 <= key < len(refs) else key: value
            for key, value in errors.items()
        }
    keyed["fields"] = errors
    return keyed


class PreparedEvent(NamedTuple):
    """A validated, encoded event that has not been written yet."""

    id: str
    text: str


class ContactSyncProducer:
    """Enqueues contact changes for the contact-sync workers.

    Validation happens here, in the calling application, so a bad call fails at once
    with ``InvalidContactEvent``. Writing is one ``XADD``; it never waits on the API.
    With ``min_replicas`` > 0 the ``XADD`` is followed, in the same round trip, by
    ``WAIT min_replicas wait_timeout_ms``: an event counts as sent only once that many
    replicas hold it, so it survives a failover (docs/sentinel.md).
    """

    def __init__(
        self,
        redis_url: str = _DEFAULTS.redis_url,
        key_prefix: str = _DEFAULTS.key_prefix,
        *,
        source: str | None = None,
        client: redis.Redis | None = None,
        socket_timeout_s: float = 5.0,
        min_replicas: int = _DEFAULTS.producer_min_replicas,
        wait_timeout_ms: int = _DEFAULTS.producer_wait_timeout_ms,
    ) -> None:
        if min_replicas < 0 or wait_timeout_ms < 1:
            raise ValueError("min_replicas must be >= 0 and wait_timeout_ms >= 1")
        self.keys = Keys(key_prefix)
        self.source = source
        self.min_replicas = min_replicas
        self.wait_timeout_ms = wait_timeout_ms
        if min_replicas:
            # WAIT holds the reply for up to its timeout: the socket must wait longer.
            socket_timeout_s = max(socket_timeout_s, wait_timeout_ms / 1000 + 1)
        self.redis = client or connect(redis_url, timeout_s=socket_timeout_s)
        self._xadd_many = self.redis.register_script(_XADD_MANY)

    @classmethod
    def from_env(cls, *, source: str | None = None) -> ContactSyncProducer:
        """Build a producer from CONTACT_SYNC_REDIS_URL, CONTACT_SYNC_KEY_PREFIX,
        CONTACT_SYNC_PRODUCER_MIN_REPLICAS and CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS."""
        settings = Settings.from_env()
        return cls(
            settings.redis_url,
            settings.key_prefix,
            source=source,
            min_replicas=settings.producer_min_replicas,
            wait_timeout_ms=settings.producer_wait_timeout_ms,
        )

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
        """Report that a contact changed. ``None`` means "unchanged"; ``""`` is a real value.

        ``fields`` maps a custom field's id, ``"%PERSTAG%"`` or title to its value (str,
        list of str, date, aware datetime). ``tags`` maps a tag name to True (add) or False
        (remove). ``lists`` maps a list's id or name to ``"subscribed"`` or
        ``"unsubscribed"``. ``account`` is the contact's company; ``""`` unlinks it.
        ``occurred_at`` defaults to now and must be timezone-aware. ``destination`` names
        the ActiveCampaign account (the workers' CONTACT_SYNC_DESTINATIONS_FILE), by
        default ``default``; a name the workers do not know is dead-lettered
        (``unknown_destination``). Returns the event id.
        Raises InvalidContactEvent, its messages keyed as ``send_many``'s dicts are
        (``firstName``, ``fields``, ``tags``, ...), then by each reference as given; or
        EnqueueError.
        """
        prepared = self.prepare_change(
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
            destination=destination,
        )
        return self.write_prepared(prepared)

    def prepare_change(
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
    ) -> PreparedEvent:
        """Validate and encode a change now, to be written later by ``write_prepared``.

        Takes the same arguments as ``contact_changed``; ``occurred_at`` defaults to the
        time of this call, not of the write. Raises InvalidContactEvent; touches no Redis.
        """
        contact: dict[str, Any] = {"email": email}
        for name, value in (
            ("firstName", first_name),
            ("lastName", last_name),
            ("phone", phone),
            ("fields", fields),
            ("tags", tags),
            ("lists", lists),
            ("account", account),
        ):
            if value is not None:
                contact[name] = value
        event_id, text = _encode(
            contact,
            occurred_at=occurred_at,
            source=source or self.source,
            destination=destination,
        )
        return PreparedEvent(event_id, text)

    def write_prepared(self, prepared: PreparedEvent) -> str:
        """Append one prepared event with a single ``XADD``. Returns its id; raises EnqueueError.

        With ``min_replicas``, EnqueueError also when fewer replicas acknowledged the event
        within ``wait_timeout_ms``: the master holds it, but a failover may lose it. Sending
        it again is safe: a repeated event changes nothing (last write wins).
        """
        try:
            if not self.min_replicas:
                self.redis.xadd(self.keys.events, {"event": prepared.text})
                return prepared.id
            # XADD and WAIT in one round trip, on one connection: WAIT counts the replicas
            # that have every write made on its own connection so far.
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(self.keys.events, {"event": prepared.text})
            pipe.wait(self.min_replicas, self.wait_timeout_ms)
            _, acknowledged = pipe.execute()
        except redis.RedisError as exc:
            raise EnqueueError(
                f"could not enqueue event {prepared.id}: {type(exc).__name__}: {exc}"
            ) from exc
        if acknowledged < self.min_replicas:
            raise EnqueueError(f"event {prepared.id}: {self._shortfall(acknowledged)}")
        return prepared.id

    def send_many(
        self,
        contacts: Iterable[Mapping[str, Any]],
        *,
        occurred_at: dt.datetime | None = None,
        source: str | None = None,
    ) -> int:
        """Enqueue many contact dicts, 1,000 per round trip. Returns the count.

        A dict has the keys of ``contact_changed``'s arguments, by their wire names:
        ``email``, ``firstName``, ``lastName``, ``phone``, ``fields`` (a mapping, as in
        ``contact_changed``) or the API's ``fieldValues`` list, ``tags``, ``lists``,
        ``account``, and ``destination`` (as ``contact_changed``'s).

        Every contact is validated before anything is written, so an InvalidContactEvent
        (whose messages are keyed by the contact's index) means nothing was enqueued. An
        EnqueueError means the first ``written`` contacts were enqueued (see write_encoded).
        """
        encoded: list[str] = []
        # One time for the batch: events of one email in it tie on occurred_at, and the
        # later one in the list wins, as it would with a time per event.
        occurred_at = occurred_at or dt.datetime.now(dt.UTC)
        source = source or self.source
        ids = _event_ids()
        for index, contact in enumerate(contacts):
            try:
                _, text = _encode(
                    contact, occurred_at=occurred_at, source=source, event_id=next(ids)
                )
            except InvalidContactEvent as exc:
                raise InvalidContactEvent({str(index): exc.messages}) from None
            encoded.append(text)
        self.write_encoded(encoded)
        return len(encoded)

    def write_encoded(self, encoded: Sequence[str]) -> None:
        """Append already-encoded events in order, in chunks of at most ``MAX_CHUNK`` (1,000).

        Each chunk is one script call, so it is written entirely or not at all. When one
        fails, the earlier chunks stay written and EnqueueError says how many events they
        held (``written``): resume with ``encoded[written:]``. With ``min_replicas``, a
        chunk that too few replicas acknowledged in time also fails (it is on the master;
        resending it is safe) and is not counted in ``written``.
        """
        written = 0
        for start in range(0, len(encoded), MAX_CHUNK):
            chunk = encoded[start : start + MAX_CHUNK]
            what = f"events {written + 1:,} to {written + len(chunk):,} of {len(encoded):,}"
            try:
                acknowledged = self._write_chunk(chunk)
            except redis.RedisError as exc:
                raise EnqueueError(
                    f"could not enqueue {what}: {type(exc).__name__}: {exc}", written=written
                ) from exc
            if acknowledged < self.min_replicas:
                raise EnqueueError(f"{what}: {self._shortfall(acknowledged)}", written=written)
            written += len(chunk)

    def _write_chunk(self, chunk: Sequence[str]) -> int:
        """One script call for ``chunk``; returns the replicas that acknowledged it."""
        if not self.min_replicas:
            self._xadd_many(keys=[self.keys.events], args=chunk)
            return 0
        pipe = self.redis.pipeline(transaction=False)
        # EVAL, not EVALSHA: a pipeline cannot load a script the server lacks (a new master
        # after a failover, say) and then retry it. Redis caches the compiled script anyway.
        pipe.eval(_XADD_MANY, 1, self.keys.events, *chunk)
        pipe.wait(self.min_replicas, self.wait_timeout_ms)
        _, acknowledged = pipe.execute()
        return int(acknowledged)

    def _shortfall(self, acknowledged: int) -> str:
        return (
            f"written to the Redis master, but {acknowledged} of the {self.min_replicas} "
            f"replicas required acknowledged it within {self.wait_timeout_ms} ms; a failover "
            "may lose it (sending it again is safe)"
        )

    def close(self) -> None:
        self.redis.close()
