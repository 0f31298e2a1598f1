"""Fault-scenario bookkeeping: generated events, the expected last-write-wins state, and
what the emulator's request log says about lost events and duplicate requests.

Every generated value is unique (``<attribute>-<event index>``), so a value seen in the
emulator points at exactly one event, and a request that re-sends a value the API already
holds is recognisably a re-send.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from worker.schema import encode_event

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
ATTRIBUTES = ("firstName", "lastName", "phone", "field:1", "field:2")  # text fields
SYNC_PATH = "/api/3/contact/sync"


@dataclass(frozen=True)
class Event:
    """One contact change: ``values`` maps attribute names (``field:<id>``) to values."""

    index: int
    email: str
    occurred_at: dt.datetime
    values: dict[str, str]

    def contact(self) -> dict[str, Any]:
        """The API-shaped contact object a producer sends."""
        contact: dict[str, Any] = {"email": self.email}
        fields = []
        for name, value in self.values.items():
            if name.startswith("field:"):
                fields.append({"field": name[6:], "value": value})
            else:
                contact[name] = value
        if fields:
            contact["fieldValues"] = fields
        return contact

    def send(self, producer: ContactSyncProducer) -> str:
        """One ``contact_changed`` call (one XADD); raises EnqueueError when Redis is away."""
        return producer.contact_changed(
            self.email,
            first_name=self.values.get("firstName"),
            last_name=self.values.get("lastName"),
            phone=self.values.get("phone"),
            fields={name[6:]: v for name, v in self.values.items() if name.startswith("field:")},
            occurred_at=self.occurred_at,
        )


def make_events(
    rng: random.Random, *, count: int, emails: int, prefix: str = "user"
) -> list[Event]:
    """``count`` shuffled events over ``emails`` addresses, each with a distinct occurred_at."""
    addresses = [f"{prefix}{n}@example.com" for n in range(emails)]
    events = []
    for index in range(count):
        names = rng.sample(ATTRIBUTES, rng.randint(1, 3))
        events.append(
            Event(
                index=index,
                email=addresses[index % emails] if index < emails else rng.choice(addresses),
                occurred_at=T0 + dt.timedelta(milliseconds=index),
                values={name: f"{name}-{index}" for name in names},
            )
        )
    rng.shuffle(events)
    return events


def send_pipelined(producer: ContactSyncProducer, events: Iterable[Event]) -> None:
    """XADD many events in one pipelined round trip, each with its own occurred_at."""
    texts = [encode_event(e.contact(), occurred_at=e.occurred_at)[1] for e in events]
    producer.write_encoded(texts)


def expected_state(events: Iterable[Event]) -> dict[str, dict[str, str]]:
    """Per-attribute last write wins by occurred_at (distinct for every generated event)."""
    return {
        email: {name: value for name, (_, value) in state.items()}
        for email, state in _winners(events).items()
    }


def _winners(events: Iterable[Event]) -> dict[str, dict[str, tuple[Event, str]]]:
    best: dict[str, dict[str, tuple[Event, str]]] = {}
    for event in events:
        state = best.setdefault(event.email, {})
        for name, value in event.values.items():
            if name not in state or event.occurred_at > state[name][0].occurred_at:
                state[name] = (event, value)
    return best


def stored_state(admin: EmulatorClient) -> dict[str, dict[str, str]]:
    """What the emulator holds, in the same shape as ``expected_state``."""
    result: dict[str, dict[str, str]] = {}
    for email, contact in admin.contacts().items():
        values = {
            name: contact[name]
            for name in ("firstName", "lastName", "phone")
            if contact.get(name) not in (None, "")
        }
        values.update(
            {f"field:{field}": value for field, value in contact.get("fieldValues", {}).items()}
        )
        result[email] = values
    return result


def lost_events(
    events: Iterable[Event],
    stored: dict[str, dict[str, str]],
    *,
    also_written: Iterable[Event] = (),
) -> list[Event]:
    """Events whose winning value for some attribute is not what the emulator holds.

    An event that lost every attribute to a newer one was merged and superseded, which is
    the design, not a loss. ``also_written`` are events that were written although their
    send was not acknowledged (a WAIT that fell short): they take part in last write wins,
    so they can supersede an acknowledged event, but are never counted as lost themselves.
    """
    counted = list(events)
    indexes = {event.index for event in counted}
    lost: dict[int, Event] = {}
    for email, state in _winners([*counted, *also_written]).items():
        for name, (event, value) in state.items():
            if event.index in indexes and stored.get(email, {}).get(name) != value:
                lost[event.index] = event
    return sorted(lost.values(), key=lambda e: e.index)


def request_attributes(body: Any) -> dict[str, str]:
    """The attributes (not the email) a contact/sync request body carries."""
    contact = body.get("contact", {}) if isinstance(body, dict) else {}
    values = {name: contact[name] for name in ("firstName", "lastName", "phone") if name in contact}
    for item in contact.get("fieldValues", []):
        values[f"field:{item['field']}"] = item["value"]
    return values


@dataclass
class RequestAudit:
    """The accepted sync requests, replayed in the emulator's order.

    ``duplicates``: accepted requests that changed nothing, because the API already held every
    value they carried (a pure re-send: one request beyond one per net change).
    ``resending``: accepted requests that re-sent at least one value the API already held
    (duplicates included; the rest also carried a newer change merged in after the crash).
    Without faults both are 0: a worker drops values equal to what was confirmed.
    """

    accepted: int = 0
    other_status: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    resending: int = 0
    duplicate_emails: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, log: list[dict[str, Any]]) -> RequestAudit:
        audit = cls()
        held: dict[str, dict[str, str]] = {}
        for entry in log:
            if entry["path"] != SYNC_PATH:
                continue
            if not 200 <= entry["status"] < 300:
                audit.other_status[entry["status"]] = audit.other_status.get(entry["status"], 0) + 1
                continue
            audit.accepted += 1
            email = str(entry["email"]).lower()
            values = request_attributes(entry["body"])
            state = held.setdefault(email, {})
            repeated = [name for name, value in values.items() if state.get(name) == value]
            if repeated:
                audit.resending += 1
                if len(repeated) == len(values):
                    audit.duplicates += 1
                    audit.duplicate_emails.append(email)
            state.update(values)
        return audit
