"""The end of ``make demo``: the summary of what the run cost, and the checks of its result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from demo_footprint import UNRESOLVABLE, requests_alone
from demo_traffic import (
    BAD_CONTACTS,
    SENDER_THREADS,
    Change,
    compare_states,
    expected_state,
    stored_state,
)

from fake_activecampaign import EmulatorClient
from worker.deadletters import DeadLetters

__all__ = ["Results", "print_summary", "requests_by_email", "requests_by_kind", "verify"]

# Rows of the requests table, in this order; the catalog endpoints share the last one.
_KINDS = ("contact/sync", "contacts", "contactTags", "contactLists", "accountContacts")
_CATALOGS = "catalogs"


@dataclass
class Results:
    """What was sent, for the summary and the verification."""

    valid: list[Change] = field(default_factory=list)
    invalid_raw: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    noop_emails: set[str] = field(default_factory=set)
    requests_before_second_wave: Counter[str] = field(default_factory=Counter)
    late_events: int = 0
    elapsed_s: float = 0.0


def requests_by_email(admin: EmulatorClient) -> Counter[str]:
    """API requests so far per contact, whatever the endpoint (the emulator's request log)."""
    return Counter(str(entry["email"]).lower() for entry in admin.requests_log() if entry["email"])


def requests_by_kind(by_route: Mapping[str, int]) -> dict[str, Counter[str]]:
    """``{"POST /api/3/contactTags": 3, ...}`` (the emulator's stats) as kind -> method -> count.

    The kind is the resource a route works on (``/contacts/{contact}/contactTags`` and
    ``/contactTags/{contactTag}`` are both ``contactTags``); field, list, tag and account
    catalog reads and creates are one kind, ``catalogs``, counted per method and resource.
    """
    kinds: dict[str, Counter[str]] = {}
    for route, count in by_route.items():
        method, _, path = route.partition(" ")
        path = path.removeprefix("/api/3/")
        segments = [part for part in path.split("/") if not part.startswith("{")]
        kind = path if path == "contact/sync" else segments[-1]
        if kind in _KINDS:
            kinds.setdefault(kind, Counter())[method] += count
        else:
            kinds.setdefault(_CATALOGS, Counter())[f"{method} {segments[0]}"] += count
    order = [*_KINDS, _CATALOGS]
    return {kind: kinds[kind] for kind in sorted(kinds, key=order.index)}


def print_summary(
    results: Results,
    *,
    admin: EmulatorClient,
    counters: Mapping[str, int],
    letters: DeadLetters,
    rate: float,
) -> None:
    stats = admin.stats()
    contacts = admin.contacts()
    reasons = sorted(Counter(letter.reason for letter in letters.list(limit=10_000)).items())
    events, requests = len(results.valid), stats["requests_total"]
    alone = sum(requests_alone(change.attributes) for change in results.valid)
    rows = [
        ("events sent (valid)", f"{events:,}", f"{SENDER_THREADS} threads, 2 waves"),
        ("invalid events (dead-lettered)", len(results.invalid_raw), "written raw with XADD"),
        ("rejected at the producer", len(results.rejected), "InvalidContactEvent, nothing sent"),
        ("distinct emails", len(expected_state(results.valid)), ""),
        ("API requests made", f"{requests:,}", "seen by the emulator, by kind:"),
        *_request_rows(stats["by_route"]),
        ("requests per event", f"{requests / events:.3f}",
         f"each event sent alone: {alone:,}+ requests ({alone / max(requests, 1):.1f}x more)"),
        ("contacts created / updated", f"{stats['created']} / {stats['updated']}", ""),
        ("syncs skipped as unchanged", counters.get("unchanged", 0), "no-op repeats: no request"),
        ("retries", counters.get("retries", 0), ""),
        ("429s received", stats["rate_limited"], "the limiter keeps this at 0"),
        ("max requests in any second", stats["max_per_second"], f"limit {rate:g}/s"),
        *_footprint_rows(contacts.values()),
        ("dead letters", letters.count(), ", ".join(f"{r}: {n}" for r, n in reasons)),
        ("elapsed", f"{results.elapsed_s:.1f} s", "first event to last sync"),
    ]  # fmt: skip
    print("\nsummary")
    for label, value, note in rows:
        print(f"  {label:<31}{value!s:>11}  {note}".rstrip())


def _request_rows(by_route: Mapping[str, int]) -> list[tuple[str, str, str]]:
    rows = []
    for kind, methods in requests_by_kind(by_route).items():
        if kind == _CATALOGS:
            note = _catalog_note(methods)
        elif len(methods) == 1:
            note = next(iter(methods))
        else:
            note = ", ".join(f"{method} {n:,}" for method, n in methods.most_common())
        rows.append((f"  {kind}", f"{methods.total():,}", note))
    return rows


def _catalog_note(methods: Counter[str]) -> str:
    """``fields 1, tags 1 + 5 created``: reads (GET) per catalog, and what was created."""
    parts = []
    for resource in dict.fromkeys(key.partition(" ")[2] for key in methods):
        reads, created = methods[f"GET {resource}"], methods[f"POST {resource}"]
        parts.append(f"{resource} {reads}" + (f" + {created} created" if created else ""))
    return "read " + ", ".join(parts)


def _footprint_rows(contacts: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """Tags, list memberships and company links that ActiveCampaign holds at the end."""
    tags: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    accounts: Counter[str] = Counter()
    for contact in contacts:
        tags.update(contact["tags"])
        statuses.update(contact["lists"].values())
        if contact.get("account"):
            accounts[contact["account"]] += 1
    lists = statuses.total()
    return [
        ("tags on contacts", f"{tags.total():,}",
         ", ".join(f"{tag} {n}" for tag, n in tags.most_common())),
        ("list memberships", f"{lists:,}",
         f"{statuses[1]:,} subscribed, {statuses[2]:,} unsubscribed"),
        ("contacts linked to a company", f"{accounts.total():,}",
         f"one account each, {len(accounts)} companies"),
    ]  # fmt: skip


def verify(results: Results, *, admin: EmulatorClient, letters: DeadLetters) -> bool:
    """Print one line per check; True when all hold."""
    expected = expected_state(results.valid)
    stored = stored_state(admin.contacts())
    exact = sum(stored.get(email) == state for email, state in expected.items())
    problems = compare_states(expected, stored)
    requests_now = requests_by_email(admin)
    quiet = sum(
        requests_now[email] == results.requests_before_second_wave[email]
        for email in results.noop_emails
    )
    dead = Counter(letter.reason for letter in letters.list(limit=10_000))
    invalid, rejected = len(results.invalid_raw), len(results.rejected)
    unresolvable = Counter(reason for reason, _, _ in UNRESOLVABLE)
    lacking = sum(min(dead[reason], n) for reason, n in unresolvable.items())
    checks = [
        (not problems, f"{exact}/{len(expected)} contacts exact in names, phones, fields, tags, "
         "lists and accounts\n          (last write wins per attribute, by occurred_at; "
         f"{results.late_events} late events lost to newer values)"),
        (quiet == len(results.noop_emails), f"{quiet}/{len(results.noop_emails)} contacts with "
         "only no-op repeats got no further request"),
        (dead["invalid_event"] == invalid, f"{dead['invalid_event']}/{invalid} invalid events "
         "dead-lettered"),
        (dead == unresolvable + Counter(invalid_event=invalid),
         f"{lacking}/{unresolvable.total()} references the account lacks dead-lettered "
         f"({', '.join(unresolvable)}), and nothing else"),
        (rejected == len(BAD_CONTACTS), f"{rejected}/{len(BAD_CONTACTS)} bad contacts rejected "
         "at the producer"),
    ]  # fmt: skip
    print()
    for ok, text in checks:
        print(f"{'verified' if ok else 'FAILED'}: {text}")
    for problem in problems[:10]:
        print(f"  {problem}")
    return all(ok for ok, _ in checks)
