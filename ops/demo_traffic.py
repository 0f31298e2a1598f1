"""Traffic for ``ops/demo.py``: realistic contact changes, bad input, and the state to expect.

Every change keeps the producer arguments it was sent with, so the state ActiveCampaign
must end in is computed here, independently of the worker: per attribute (``firstName``,
``lastName``, ``phone``, ``field:<id>``, ``tag:<name>``, ``list:<id>``, ``account``), the
change with the latest ``occurred_at`` wins, however the event wrote the reference
(``demo_footprint.py``). All timestamps within a wave are distinct, so arrival order never
decides a winner.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from demo_footprint import (
    COMPANIES,
    UNRESOLVABLE,
    FootprintTraffic,
    References,
    expected_footprint,
    is_footprint,
    producer_arguments,
    stored_footprint,
)

from producers import ContactSyncProducer, InvalidContactEvent
from worker.keys import Keys

__all__ = [
    "BAD_CONTACTS",
    "SENDER_THREADS",
    "Change",
    "TrafficPlan",
    "compare_states",
    "expected_state",
    "rejected_by_producer",
    "send_concurrently",
    "stored_state",
    "write_invalid_raw",
]

SENDER_THREADS = 3
# Distinct, increasing occurred_at within a wave: 2,000 events span 0.2 s.
_STEP = dt.timedelta(microseconds=100)
_TEXT_ATTRIBUTES = ("firstName", "lastName", "phone")
_SIGNUP_ATTRIBUTES = ("firstName", "lastName", "phone", "field:1", "field:5", "field:6")

FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon")
LAST_NAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski")
DOMAINS = ("example.com", "example.org", "mail.example.net")
JOB_TITLES = ("Engineer", "Designer", "Founder", "Marketing lead", "Support")
SHIRT_SIZES = ("S", "M", "L", "XL")  # field 4, a dropdown
PLANS = ("Free", "Pro", "Enterprise")  # field 5, a radio with these options
INTERESTS = ("Product news", "Events", "Offers")  # field 8, a listbox with these options


@dataclass(frozen=True, slots=True)
class Change:
    """One contact change as an application reports it (email exactly as it was typed)."""

    email: str
    occurred_at: dt.datetime
    attributes: Mapping[str, Any]  # resolved attribute name -> producer value
    spelling: Mapping[str, str | int] = field(default_factory=dict)  # attribute -> reference
    # References the account lacks, as keyword -> {reference: value}: dead-lettered.
    unresolvable: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        return self.email.strip().lower()

    def send(self, producer: ContactSyncProducer, source: str) -> None:
        producer.contact_changed(
            self.email,
            first_name=self.attributes.get("firstName"),
            last_name=self.attributes.get("lastName"),
            phone=self.attributes.get("phone"),
            **producer_arguments(self.attributes, self.spelling, self.unresolvable),
            occurred_at=self.occurred_at,
            source=source,
        )


class TrafficPlan:
    """Seeded generator of both waves of demo traffic for ``email_count`` contacts."""

    def __init__(self, seed: int, email_count: int, references: References) -> None:
        self.rng = random.Random(seed)
        self.footprint = FootprintTraffic(self.rng, references)
        self.emails = [self._email(n) for n in range(email_count)]
        # A few contacts are busy (many edits), most change once or twice: Pareto weights.
        self.weights = [self.rng.paretovariate(1.2) for _ in self.emails]

    def first_wave(self, count: int, start: dt.datetime) -> list[Change]:
        """A signup per email, edits, and a few references the account lacks, ``count`` in
        all; shuffled, so arrival is out of order."""
        plan = [(email, self._signup) for email in self.emails]
        extra_count = max(0, count - len(plan) - len(UNRESOLVABLE))
        plan += [
            (email, self._edit)
            for email in self.rng.choices(self.emails, self.weights, k=extra_count)
        ]
        changes = [
            self._change(email, start + n * _STEP, make()) for n, (email, make) in enumerate(plan)
        ]
        # Each rides with a valid profile edit, which must still sync.
        for n, (_, _, unresolvable) in enumerate(UNRESOLVABLE, start=len(plan)):
            change = self._change(
                self.rng.choice(self.emails), start + n * _STEP, self._profile_edit()
            )
            changes.append(dataclasses.replace(change, unresolvable=unresolvable))
        self.rng.shuffle(changes)
        return changes

    def second_wave(
        self, count: int, start: dt.datetime, sent: Sequence[Change]
    ) -> tuple[list[Change], set[str]]:
        """Updates, no-op repeats of what was sent, and late events older than anything sent.

        Returns the changes (shuffled) and the emails that get nothing but no-op repeats.
        """
        sent_values = _winning(sent)
        self.footprint.any_tag_case = True  # the tags exist by now
        noop_emails = self.rng.sample(self.emails, max(1, len(self.emails) // 5))
        quiet = set(noop_emails)
        others = [email for email in self.emails if email not in quiet]
        noop_count = max(len(noop_emails), count // 4)
        late_count = max(3, count // 20)
        update_count = max(0, count - noop_count - late_count)

        repeats = noop_emails + self.rng.choices(noop_emails, k=noop_count - len(noop_emails))
        plan = [(email, self._repeat(sent_values[email])) for email in repeats]
        updated = self.rng.sample(others, max(1, len(others) // 2))
        plan += [
            (email, self._update(sent_values[email]))
            for email in self.rng.choices(updated, k=update_count)
        ]
        changes = [
            self._change(email, start + n * _STEP, attributes)
            for n, (email, attributes) in enumerate(plan)
        ]
        oldest = min(change.occurred_at for change in sent)
        changes += [
            self._change(
                email,
                oldest - dt.timedelta(minutes=self.rng.randint(1, 600)),
                self._late(sent_values[email]),
            )
            for email in self.rng.choices(others, k=late_count)
        ]
        self.rng.shuffle(changes)
        return changes, quiet

    # -- kinds of change ----------------------------------------------------------------

    def _edit(self) -> dict[str, Any]:
        kinds = (
            (self._profile_edit, 3),
            (self._activity, 2),
            (self._plan_change, 2),
            (self.footprint.tagging, 1),
            (self.footprint.subscription, 0.75),
            (self.footprint.company_move, 0.5),
        )
        make = self.rng.choices([kind for kind, _ in kinds], [weight for _, weight in kinds])[0]
        return make()

    def _signup(self) -> dict[str, Any]:
        company = self.rng.choice(COMPANIES)
        return {
            "firstName": self.rng.choice(FIRST_NAMES),
            "lastName": self.rng.choice(LAST_NAMES),
            "phone": self._phone(),
            "field:1": company,
            "field:5": "Free",
            "field:6": dt.date(2025, 1, 1) + dt.timedelta(days=self.rng.randint(0, 364)),
            **self.footprint.signup(company),
        }

    def _profile_edit(self) -> dict[str, Any]:
        candidates = {
            "firstName": self.rng.choice(FIRST_NAMES),
            "lastName": self.rng.choice(LAST_NAMES),
            "phone": self._phone(),
            "field:2": self.rng.choice(JOB_TITLES),
            "field:4": self.rng.choice(SHIRT_SIZES),
        }
        chosen = self.rng.sample(sorted(candidates), self.rng.randint(1, 3))
        return {name: candidates[name] for name in chosen}

    def _activity(self) -> dict[str, Any]:
        login = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            minutes=self.rng.randint(0, 500_000)
        )
        return {"field:7": login, "field:8": self.rng.sample(INTERESTS, self.rng.randint(1, 3))}

    def _plan_change(self) -> dict[str, Any]:
        plan = self.rng.choice(PLANS)
        return {
            "field:5": plan,
            "field:3": f"moved to {plan} (ticket #{self.rng.randint(1, 9999)})",
        }

    def _repeat(self, sent: Mapping[str, tuple[dt.datetime, Any]]) -> dict[str, Any]:
        """Values equal to what was already sent: a form re-saved without edits."""
        chosen = self.rng.sample(sorted(sent), min(len(sent), self.rng.randint(1, 3)))
        return {name: sent[name][1] for name in chosen}

    def _update(self, sent: Mapping[str, tuple[dt.datetime, Any]]) -> dict[str, Any]:
        # Forms often send unchanged attributes along with the changed ones.
        if self.rng.random() < 0.3:
            return {**self._repeat(sent), **self._edit()}
        return self._edit()

    def _late(self, sent: Mapping[str, tuple[dt.datetime, Any]]) -> dict[str, Any]:
        """A delayed change to attributes the contact already has; it must lose."""
        signup = self._signup()
        chosen = self.rng.sample(_SIGNUP_ATTRIBUTES, self.rng.randint(1, 2))
        late = {name: signup[name] for name in chosen}
        if self.rng.random() < 0.5:
            late |= self.footprint.late({name: value for name, (_, value) in sent.items()})
        return late

    # -- helpers ------------------------------------------------------------------------

    def _change(self, email: str, occurred_at: dt.datetime, attributes: dict[str, Any]) -> Change:
        """A change as an app sends it: email as typed, references written one of their ways."""
        spelling = self.footprint.spelling(attributes)
        return Change(self._as_typed(email), occurred_at, attributes, spelling)

    def _email(self, n: int) -> str:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        return f"{first}.{last}{n}@{self.rng.choice(DOMAINS)}".lower()

    def _as_typed(self, email: str) -> str:
        """Apps send emails as users typed them; the identity is trimmed and lower-cased."""
        roll = self.rng.random()
        if roll < 0.05:
            return f" {email.title()} "
        if roll < 0.10:
            return email.upper()
        return email

    def _phone(self) -> str:
        return f"+1 555 {self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}"


# -- sending ------------------------------------------------------------------------------


def send_concurrently(
    producer: ContactSyncProducer, changes: Sequence[Change], *, threads: int = SENDER_THREADS
) -> None:
    """Send ``changes`` from ``threads`` threads at once, as several app processes would."""

    def send_share(share: int) -> None:
        for change in changes[share::threads]:
            change.send(producer, source=f"demo:thread-{share + 1}")

    with ThreadPoolExecutor(threads, thread_name_prefix="demo-sender") as pool:
        list(pool.map(send_share, range(threads)))  # list(): re-raise any sender's error


def _envelope(contact: dict[str, Any]) -> str:
    document = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "source": "demo:raw-xadd",
        "contact": contact,
    }
    return json.dumps(document)


# Bad input that a producer in another language could still write with a bare XADD.
BAD_CONTACTS = {
    "unknown attribute": {"email": "nick.name@example.com", "nickname": "Nicky"},
    "orgid": {"email": "org.member@example.com", "orgid": "42"},
    "bad email": {"email": "not-an-email", "firstName": "Nobody"},
}


def write_invalid_raw(client: redis.Redis, keys: Keys) -> list[str]:
    """XADD invalid events straight to the stream, bypassing validation. Returns their labels."""
    raw = {"not JSON": "{first_name: Ada"} | {
        label: _envelope(contact) for label, contact in BAD_CONTACTS.items()
    }
    for text in raw.values():
        client.xadd(keys.events, {"event": text})
    return list(raw)


def rejected_by_producer(producer: ContactSyncProducer) -> list[tuple[str, str]]:
    """Offer the same bad contacts to the producer: each must raise InvalidContactEvent.

    Returns (label, the first validation message) per rejection; nothing is enqueued.
    """
    rejected = []
    for label, contact in BAD_CONTACTS.items():
        try:
            producer.send_many([contact])
        except InvalidContactEvent as exc:
            rejected.append((label, _first_message(exc.messages)))
    return rejected


def _first_message(messages: Any) -> str:
    while isinstance(messages, Mapping) and messages:
        key, messages = next(iter(messages.items()))
        if isinstance(messages, list) and messages and isinstance(messages[0], str):
            return f"{key}: {messages[0]}"
    return str(messages)


# -- the state to expect --------------------------------------------------------------------


def _winning(changes: Iterable[Change]) -> dict[str, dict[str, tuple[dt.datetime, Any]]]:
    """Per email and attribute: (occurred_at, producer value) of the latest change."""
    best: dict[str, dict[str, tuple[dt.datetime, Any]]] = {}
    for change in changes:
        state = best.setdefault(change.identity, {})
        for name, value in change.attributes.items():
            if name not in state or change.occurred_at > state[name][0]:
                state[name] = (change.occurred_at, value)
    return best


def wire_value(value: Any) -> str:
    """The text ActiveCampaign stores for a producer value (dates ISO, lists ``||a||b||``)."""
    if isinstance(value, dt.date):  # also datetime, whose isoformat keeps the offset
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "||" + "||".join(value) + "||" if value else ""
    return str(value)


def expected_state(changes: Iterable[Change]) -> dict[str, dict[str, str]]:
    """Per-attribute last-write-wins state of every email, as ActiveCampaign should hold it:
    names, phone and fields as their text; tags, lists and account as demo_footprint's."""
    expected = {}
    for email, state in _winning(changes).items():
        winners = {name: value for name, (_, value) in state.items()}
        texts = {name: wire_value(v) for name, v in winners.items() if not is_footprint(name)}
        expected[email] = {name: text for name, text in texts.items() if text}
        expected[email] |= expected_footprint(winners)
    return expected


def stored_state(contacts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """The emulator's contacts in the same shape. Like expected_state, it leaves out "" values:
    the emulator stores "" for an attribute that was never set."""
    state: dict[str, dict[str, str]] = {}
    for email, contact in contacts.items():
        values = {name: contact[name] for name in _TEXT_ATTRIBUTES if contact.get(name)}
        values |= {f"field:{fid}": value for fid, value in contact["fieldValues"].items() if value}
        state[email] = values | stored_footprint(contact)
    return state


def compare_states(
    expected: Mapping[str, Mapping[str, str]], stored: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """One line per email whose stored state differs from the expected one (none: all exact)."""
    problems = []
    for email in sorted(expected.keys() | stored.keys()):
        want, got = expected.get(email), stored.get(email)
        if want == got:
            continue
        if got is None:
            problems.append(f"{email}: missing in ActiveCampaign")
        elif want is None:
            problems.append(f"{email}: unexpected contact")
        else:
            wrong = sorted(
                name for name in want.keys() | got.keys() if want.get(name) != got.get(name)
            )
            details = ", ".join(f"{n}={got.get(n)!r} (want {want.get(n)!r})" for n in wrong)
            problems.append(f"{email}: {details}")
    return problems
