"""worker.bulk.BulkStep on real Redis, against a fake ActiveCampaign: each step of a batch's
life and each crash path, judged by the Redis state it leaves (contact hashes, leases, due,
sync-only marks, the batch and its schedule, the stats)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from typing import Any

import pytest
import redis
import requests

from tests._layout import readable_contact
from worker.bulk import BulkStep, StepResult
from worker.bulk_store import Batch, BulkLimits, BulkStore, Member
from worker.client import raise_for_status
from worker.errors import ApiStatusError, ApiTransportError
from worker.event import ContactEvent
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.settings import Settings
from worker.store import MergeStore

T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)
# Every settled due email goes into one batch at once: no threshold, no settling time.
LIMITS = BulkLimits(min_backlog=1, max_batch=10, min_batch=1, settled_s=0)
CLAIM_LEASE_S = 60.0  # the lease bulk_claim.lua gives; the build renews it to bulk_lease_s
STEP_LEASE_S = 30.0
SETTINGS = Settings(bulk_lease_s=600.0, bulk_pause_s=60.0, confirmed_ttl_s=3600.0)
SUBMITTED = {"success": 1, "queued_contacts": 3, "batchId": "b1", "message": "queued"}

_entries = itertools.count(1_764_421_200_000)


class FakeActiveCampaign:
    """Stands in for ActiveCampaignClient.call: gives its scripted answers in order (raising
    the exceptions among them) and records each call; a call with no answer left fails."""

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.calls: list[tuple[str, str, Any, Any]] = []

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        self.calls.append((method, path, json, params))
        assert self.answers, f"unexpected call {method} {path}"
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def posted_emails(self) -> list[list[str]]:
        """The emails of each bulk_import body sent so far."""
        return [
            [contact["email"] for contact in body["contacts"]]
            for method, _, body, _ in self.calls
            if method == "POST"
        ]


class Clock:
    """The worker's wall clock (submitting_ms, the orphan wait), moved by hand."""

    def __init__(self) -> None:
        self.now_s = 1_764_421_200.0

    def __call__(self) -> float:
        return self.now_s


class WorkerDied(Exception):
    """Raised where a worker process would have died: nothing in bulk.py catches it."""


class DiesAfterBegin(MergeStore):
    """A merge store whose worker dies right after begin_many moved the values in flight."""

    def begin_many(self, *args: Any, **kwargs: Any) -> Any:
        super().begin_many(*args, **kwargs)
        raise WorkerDied("killed mid-build")


def api_rejected(status: int, body: Any) -> ApiStatusError:
    """The exception worker.client raises for this answer (through raise_for_status)."""
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps(body).encode()
    try:
        raise_for_status(response)
    except ApiStatusError as error:
        return error
    raise AssertionError(f"raise_for_status let HTTP {status} through")


@dataclasses.dataclass
class Rig:
    redis: redis.Redis
    keys: Keys
    bulk: BulkStore
    store: MergeStore
    api: FakeActiveCampaign
    clock: Clock
    step: BulkStep

    # -- setting up -----------------------------------------------------------------------

    def ingest(self, email: str, attributes: dict[str, str], *, at_s: float = 0) -> None:
        """Merge one event, its attributes as the pump hands them to ingest (resolved: a tag
        is ``tag:<casefolded name>`` = flag + name as written)."""
        event = ContactEvent(
            id=f"ev-{email}-{at_s}",
            occurred_at=T0 + dt.timedelta(seconds=at_s),
            source="test",
            email=email,
            attributes=attributes,
        )
        result = self.store.ingest([(f"{next(_entries)}-0", event)], [], debounce_s=0)
        assert result.merged == 1

    def claim(self, contacts: dict[str, dict[str, str]]) -> Batch:
        """Ingest one event per email and lease all of them as one batch."""
        for email, attributes in contacts.items():
            self.ingest(email, attributes)
        claim = self.bulk.claim_batch(LIMITS, lease_s=CLAIM_LEASE_S)
        assert claim.batch_id is not None
        assert sorted(email for email, _ in claim.members) == sorted(contacts)
        return self.batch(claim.batch_id)

    # -- driving steps --------------------------------------------------------------------

    def make_due(self, batch_id: str) -> None:
        """The batch's next step is due now. Its wait (a poll delay, a backoff, a step lease
        that ran out) is skipped by moving its score, rather than by sleeping."""
        self.redis.zadd(self.keys.bulk_batches, {batch_id: 0})

    def hand_out(self) -> tuple[str, str]:
        handed = self.bulk.due_steps(limit=10, step_lease_s=STEP_LEASE_S)
        assert len(handed) == 1, handed
        return handed[0]

    def run_due(self, step: BulkStep | None = None) -> StepResult:
        """Hand out the one due step and run it."""
        return (step or self.step).run(*self.hand_out())

    # -- reading the state ----------------------------------------------------------------

    def batch(self, batch_id: str) -> Batch:
        batch = self.bulk.load(batch_id)
        assert batch is not None
        return batch

    def contact(self, email: str) -> dict[str, str]:
        return readable_contact(self.redis.hgetall(self.keys.contact(email)), email)

    def values(self, email: str, state: str) -> dict[str, str]:
        """``{"firstName": "A", ...}`` of one state (p, f or c), the email's code left out."""
        prefix = f"{state}:"
        return {
            name[2:]: value
            for name, value in self.contact(email).items()
            if name.startswith(prefix) and name != f"{state}:email"
        }

    def zset(self, key: str) -> dict[str, float]:
        return {m.decode(): s for m, s in self.redis.zrange(key, 0, -1, withscores=True)}

    def tokens(self) -> dict[str, str]:
        raw = self.redis.hgetall(self.keys.lease_tokens)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def stats(self) -> dict[str, int]:
        raw = self.redis.hgetall(self.keys.stats)
        return {k.decode(): int(v) for k, v in raw.items()}

    def now_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def snapshot(self) -> dict[str, Any]:
        """Every key of this test's prefix and its whole value."""
        readers = {
            b"hash": self.redis.hgetall,
            b"zset": lambda key: self.redis.zrange(key, 0, -1, withscores=True),
            b"string": self.redis.get,
            b"list": lambda key: self.redis.lrange(key, 0, -1),
            b"stream": self.redis.xrange,
        }
        return {
            key: readers[self.redis.type(key)](key)
            for key in sorted(self.redis.scan_iter(match=f"{self.keys.prefix}:*"))
        }

    def assert_sent_to_sync_path(
        self, members: list[Member], pending: dict[str, dict[str, str]]
    ) -> None:
        """Each email is due again at once and marked sync-only for an hour; its batch lease
        and token are gone; what was in flight is pending again, not confirmed."""
        now = self.now_ms()
        due, sync_only, leased = (
            self.zset(self.keys.due),
            self.zset(self.keys.bulk_sync_only),
            self.zset(self.keys.bulk_leases),
        )
        tokens = self.tokens()
        for email, _ in members:
            assert due[email] <= now
            assert now + 3_590_000 < sync_only[email] <= now + 3_600_000
            assert email not in leased
            assert email not in tokens
            assert self.values(email, "p") == pending[email]
            assert self.values(email, "f") == {}
            assert self.values(email, "c") == {}
            assert "m:attempt" not in self.contact(email)  # bulk's failure is no sync attempt


@pytest.fixture
def rig(redis_client: redis.Redis, key_prefix: str) -> Rig:
    keys = Keys(key_prefix)
    bulk = BulkStore(redis_client, keys)
    store = MergeStore(redis_client, keys)
    store.ensure_group()
    api, clock = FakeActiveCampaign(), Clock()
    step = BulkStep(
        bulk=bulk,
        store=store,
        client=api,  # type: ignore[arg-type]
        limiter=RateLimiter(redis_client, keys, rate_per_s=5),
        bulk_limiter=RateLimiter.bulk(redis_client, keys, per_minute=100),
        settings=SETTINGS,
        step_lease_s=STEP_LEASE_S,
        wall=clock,
    )
    return Rig(redis_client, keys, bulk, store, api, clock, step)


def names(count: int, tag: str) -> dict[str, dict[str, str]]:
    return {f"{tag}{n}@example.com": {"firstName": f"{tag.upper()}{n}"} for n in range(count)}


def test_a_batch_is_built_submitted_polled_and_confirmed_but_for_its_failures(rig: Rig) -> None:
    """Build -> submit -> a pending poll renews the leases -> completed: every email but the failed one is confirmed and released; the failed one is pending, due and sync-only; the batch is gone."""
    contacts = names(4, "h")
    batch = rig.claim(contacts)

    built = rig.run_due()
    assert (built.event, built.fields["contacts"], built.fields["to_sync"]) == ("bulk.built", 4, 0)
    after_build = rig.batch(batch.id)
    assert after_build.state == "built"
    body = json.loads(after_build.get("body"))
    assert {entry["email"]: entry["first_name"] for entry in body} == {
        email: attributes["firstName"] for email, attributes in contacts.items()
    }
    for email in contacts:  # in flight now: pending emptied, lease renewed to bulk_lease_s
        assert rig.values(email, "f") == contacts[email]
        assert rig.values(email, "p") == {}

    rig.api.answers.append(SUBMITTED)
    submitted = rig.run_due()
    assert (submitted.event, submitted.fields["ac_batch"]) == ("bulk.submitted", "b1")
    assert rig.api.calls[-1] == ("POST", "/api/3/import/bulk_import", {"contacts": body}, None)
    assert rig.batch(batch.id).state == "submitted"
    assert rig.batch(batch.id).get("ac_batch") == "b1"

    # Time passes: the leases are close to running out when the first poll comes.
    soon = rig.now_ms() + 5_000
    rig.redis.zadd(rig.keys.bulk_leases, dict.fromkeys(contacts, soon), xx=True)
    rig.make_due(batch.id)
    rig.api.answers.append({"status": False})
    pending = rig.run_due()
    assert pending.event == "bulk.pending"
    assert rig.api.calls[-1] == ("GET", "/api/3/import/info", None, {"batchId": "b1"})
    now = rig.now_ms()
    leased = rig.zset(rig.keys.bulk_leases)
    assert all(now + 590_000 < leased[email] <= now + 600_000 for email in contacts)
    assert rig.tokens() == dict(batch.members)  # renewed, not re-leased
    assert rig.batch(batch.id).number("polls") == 1
    assert rig.zset(rig.keys.due) == {}

    failed = batch.members[1][0]
    rig.make_due(batch.id)
    rig.api.answers.append({"status": "completed", "success": ["1"], "failure": [failed]})
    completed = rig.run_due()

    confirmed = [email for email, _ in batch.members if email != failed]
    assert completed.event == "bulk.completed"
    assert completed.confirmed == confirmed
    assert (completed.fields["confirmed"], completed.fields["failed"]) == (3, 1)
    for email in confirmed:
        assert rig.values(email, "c") == contacts[email]
        assert rig.values(email, "p") == rig.values(email, "f") == {}
        assert rig.contact(email)["m:known"] == "1"
    assert set(rig.zset(rig.keys.due)) == {failed}
    assert set(rig.zset(rig.keys.bulk_sync_only)) == {failed}
    rig.assert_sent_to_sync_path([(failed, "")], {failed: contacts[failed]})
    assert rig.zset(rig.keys.bulk_leases) == {}
    assert rig.tokens() == {}
    assert rig.bulk.load(batch.id) is None
    assert rig.zset(rig.keys.bulk_batches) == {}
    stats = rig.stats()
    assert stats["synced_bulk"] == 3
    assert stats["bulk_to_sync"] == 1
    assert (stats["bulk_batches_submitted"], stats["bulk_batches_completed"]) == (1, 1)
    assert stats["bulk_polls"] == 2


def test_a_build_that_died_half_way_releases_the_emails_and_loses_nothing_in_flight(
    rig: Rig,
) -> None:
    """A batch left in "building" (its worker died after begin_many) is deleted and its leases ended at once; claim_due leases the emails afresh with new tokens, and their sync sends the values that were in flight."""
    contacts = names(3, "r")
    batch = rig.claim(contacts)
    dying = dataclasses.replace(rig.step, store=DiesAfterBegin(rig.redis, rig.keys))
    with pytest.raises(WorkerDied):
        rig.run_due(dying)
    assert rig.batch(batch.id).state == "building"
    for email in contacts:
        assert rig.values(email, "f") == contacts[email]
        assert rig.values(email, "p") == {}

    rig.make_due(batch.id)  # the dead build's step lease ran out
    rebuilt = rig.run_due()

    assert (rebuilt.event, rebuilt.fields["released"]) == ("bulk.rebuilt", 3)
    assert rig.bulk.load(batch.id) is None
    assert rig.zset(rig.keys.bulk_batches) == {}
    now = rig.now_ms()
    assert all(score <= now for score in rig.zset(rig.keys.bulk_leases).values())

    claimed = rig.store.claim_due(max_leases=100, lease_s=60)
    assert claimed.expired == 3
    assert sorted(claim.email for claim in claimed.claims) == sorted(contacts)
    old_tokens = {token for _, token in batch.members}
    assert not old_tokens & {claim.lease for claim in claimed.claims}
    assert rig.zset(rig.keys.bulk_leases) == {}
    assert set(rig.zset(rig.keys.leases)) == set(contacts)
    for claim in claimed.claims:
        begun = rig.store.begin_sync(claim.email, claim.lease, lease_s=60, confirmed_ttl_s=3600)
        assert begun.status == "send"
        assert begun.attributes == {"email": claim.email, **contacts[claim.email]}


def test_a_submit_that_died_keeps_its_leases_for_orphan_s_then_uses_the_sync_path(
    rig: Rig,
) -> None:
    """A batch left in "submitting" keeps its emails leased until 120 s after submitting_ms (bulk.orphan_wait, rescheduled for then); after that its emails go to the sync path and the batch is deleted (bulk.orphaned)."""
    contacts = names(3, "o")
    batch = rig.claim(contacts)
    assert rig.run_due().event == "bulk.built"
    rig.api.answers.append(WorkerDied("killed while bulk_import was in flight"))
    with pytest.raises(WorkerDied):
        rig.run_due()
    orphan = rig.batch(batch.id)
    assert orphan.state == "submitting"
    assert orphan.number("submitting_ms") == rig.clock.now_s * 1000

    soon = rig.now_ms() + 5_000  # the leases are close to running out
    rig.redis.zadd(rig.keys.bulk_leases, dict.fromkeys(contacts, soon), xx=True)
    rig.make_due(batch.id)  # the dead submit's step lease ran out
    waiting = rig.run_due()

    assert (waiting.event, waiting.fields["wait_s"]) == ("bulk.orphan_wait", 120.0)
    now = rig.now_ms()
    leased = rig.zset(rig.keys.bulk_leases)
    assert all(now + 590_000 < leased[email] <= now + 600_000 for email in contacts)
    assert rig.tokens() == dict(batch.members)
    assert rig.batch(batch.id).state == "submitting"
    next_step = rig.zset(rig.keys.bulk_batches)[batch.id]
    assert now + 119_000 < next_step <= now + 120_000
    assert rig.zset(rig.keys.due) == {}
    assert rig.zset(rig.keys.bulk_sync_only) == {}

    rig.clock.now_s += 119  # submitting_ms is 119 s ago: still possibly in flight
    rig.make_due(batch.id)
    assert rig.run_due().fields["wait_s"] == 1.0
    assert rig.zset(rig.keys.due) == {}

    rig.clock.now_s += 2  # submitting_ms is 121 s ago
    rig.make_due(batch.id)
    orphaned = rig.run_due()

    assert (orphaned.event, orphaned.fields["to_sync"]) == ("bulk.orphaned", 3)
    rig.assert_sent_to_sync_path(batch.members, contacts)
    assert rig.bulk.load(batch.id) is None
    assert rig.zset(rig.keys.bulk_batches) == {}
    assert rig.stats()["bulk_to_sync"] == 3
    assert len(rig.api.calls) == 1  # the orphan is never submitted again


def test_a_step_whose_token_is_stale_stops_quietly_and_changes_nothing(rig: Rig) -> None:
    """A step handed out again after its step lease ran out owns the batch: the presumed-dead step's run returns bulk.superseded and leaves every key as it was; the new step builds."""
    contacts = names(3, "s")
    batch = rig.claim(contacts)
    [(_, old)] = rig.bulk.due_steps(limit=10, step_lease_s=0)  # presumed dead at once
    [(_, new)] = rig.bulk.due_steps(limit=10, step_lease_s=STEP_LEASE_S)
    before = rig.snapshot()

    stale = rig.step.run(batch.id, old)

    assert stale.event == "bulk.superseded"
    assert stale.fields == {"batch": batch.id, "state": "claimed"}
    assert rig.snapshot() == before
    assert rig.step.run(batch.id, new).event == "bulk.built"
    assert rig.batch(batch.id).state == "built"


def test_five_transport_errors_in_a_row_send_the_batch_to_the_sync_path(rig: Rig) -> None:
    """Each failed submit keeps the batch "built", counts submit_failures and backs off 2, 4, 8, 16 s; the fifth hands every email to the sync path (bulk.abandoned) and deletes the batch."""
    contacts = names(3, "f")
    batch = rig.claim(contacts)
    assert rig.run_due().event == "bulk.built"
    body = rig.batch(batch.id).get("body")

    for failures, delay_s in enumerate([2.0, 4.0, 8.0, 16.0], start=1):
        rig.api.answers.append(ApiTransportError("connection reset"))
        result = rig.run_due()
        assert (result.event, result.fields["delay_s"]) == ("bulk.submit_retry", delay_s)
        kept = rig.batch(batch.id)
        assert (kept.state, kept.number("submit_failures")) == ("built", failures)
        assert kept.get("body") == body
        assert rig.tokens() == dict(batch.members)
        now = rig.now_ms()
        next_step = rig.zset(rig.keys.bulk_batches)[batch.id]
        assert now + delay_s * 1000 - 1_000 < next_step <= now + delay_s * 1000
        rig.make_due(batch.id)  # skip the backoff

    rig.api.answers.append(ApiTransportError("connection reset"))
    abandoned = rig.run_due()

    assert (abandoned.event, abandoned.fields["to_sync"]) == ("bulk.abandoned", 3)
    rig.assert_sent_to_sync_path(batch.members, contacts)
    assert rig.bulk.load(batch.id) is None
    assert rig.zset(rig.keys.bulk_batches) == {}
    assert len(rig.api.posted_emails()) == 5
    assert rig.stats()["bulk_to_sync"] == 3


def test_rate_limit_exceeded_pauses_bulk_import_and_keeps_the_batch(rig: Rig) -> None:
    """HTTP 400 "Rate limit exceeded." pauses bulk import for bulk_pause_s, counts bulk_rate_limited and puts the batch back to "built" with its leases and body; nothing is dead-lettered and the next submit waits for the pause."""
    contacts = names(3, "l")
    batch = rig.claim(contacts)
    assert rig.run_due().event == "bulk.built"
    body = rig.batch(batch.id).get("body")
    rig.api.answers.append(
        api_rejected(400, {"success": 0, "message": "Rate limit exceeded.", "failureReasons": []})
    )

    limited = rig.run_due()

    assert (limited.event, limited.fields["pause_s"]) == ("bulk.rate_limited", 60.0)
    paused_s = rig.step.bulk_limiter.paused_for_s(rig.redis)
    assert 59.0 < paused_s <= 60.0
    assert rig.redis.get(rig.keys.rate_pause) is None  # the account's 5/s limiter runs on
    kept = rig.batch(batch.id)
    assert (kept.state, kept.get("body")) == ("built", body)
    assert "submit_failures" not in kept.fields
    now = rig.now_ms()
    assert now + 59_000 < rig.zset(rig.keys.bulk_batches)[batch.id] <= now + 60_000
    assert rig.tokens() == dict(batch.members)
    assert set(rig.zset(rig.keys.bulk_leases)) == set(contacts)
    assert rig.stats()["bulk_rate_limited"] == 1
    assert "dead_lettered" not in rig.stats()
    assert rig.redis.xlen(rig.keys.dead) == 0
    assert rig.zset(rig.keys.due) == rig.zset(rig.keys.bulk_sync_only) == {}

    rig.make_due(batch.id)
    waiting = rig.run_due()
    assert waiting.event == "bulk.waiting"
    assert waiting.fields["wait_s"] > 59.0
    assert len(rig.api.calls) == 1


def test_a_refused_contact_goes_to_the_sync_path_and_the_rest_is_sent_again(rig: Rig) -> None:
    """A validation failure naming contact 1 sends that email to the sync path; the batch is "built" again without it, and the next submit's body no longer holds it."""
    contacts = names(3, "v")
    batch = rig.claim(contacts)
    assert rig.run_due().event == "bulk.built"
    members = rig.batch(batch.id).members
    refused_email = members[1][0]
    rig.api.answers.append(
        api_rejected(
            400,
            {
                "success": 0,
                "message": "Contact validation failed.",
                "failureReasons": [{"contact": 1, "failureReason": "Email address is not valid."}],
            },
        )
    )

    refused = rig.run_due()

    assert refused.event == "bulk.refused"
    assert (refused.fields["refused"], refused.fields["resent"]) == (1, 2)
    assert refused.fields["reasons"] == ["Email address is not valid."]
    rig.assert_sent_to_sync_path([members[1]], contacts)
    rebuilt = rig.batch(batch.id)
    assert rebuilt.state == "built"
    assert rebuilt.members == [members[0], members[2]]
    assert [entry["email"] for entry in json.loads(rebuilt.get("body"))] == [
        members[0][0],
        members[2][0],
    ]

    rig.api.answers.append(SUBMITTED)
    assert rig.run_due().event == "bulk.submitted"  # due at once, no make_due
    first, again = rig.api.posted_emails()
    assert refused_email in first
    assert again == [members[0][0], members[2][0]]


def test_tag_removals_and_blank_values_go_to_the_sync_path_at_build_time(rig: Rig) -> None:
    """A change that removes a tag or sets a blank value cannot be said in bulk import: at build time its email goes to the sync path (pending, due, sync-only) and is not in the body; a tag addition is."""
    contacts = {
        "plain@example.com": {"firstName": "Plain"},
        "adds-tag@example.com": {"firstName": "Adds", "tag:vip": "1VIP"},
        "drops-tag@example.com": {"firstName": "Drops", "tag:x": "0X"},
        "blank@example.com": {"firstName": "Blank", "account": ""},
    }
    batch = rig.claim(contacts)

    built = rig.run_due()

    assert built.event == "bulk.built"
    assert (built.fields["contacts"], built.fields["to_sync"]) == (2, 2)
    body = json.loads(rig.batch(batch.id).get("body"))
    assert sorted(body, key=lambda entry: entry["email"]) == [
        {"email": "adds-tag@example.com", "first_name": "Adds", "tags": ["VIP"]},
        {"email": "plain@example.com", "first_name": "Plain"},
    ]
    to_sync = [m for m in batch.members if m[0] in {"drops-tag@example.com", "blank@example.com"}]
    rig.assert_sent_to_sync_path(to_sync, contacts)
    kept = rig.batch(batch.id)
    assert sorted(email for email, _ in kept.members) == [
        "adds-tag@example.com",
        "plain@example.com",
    ]
    assert set(rig.zset(rig.keys.bulk_leases)) == {"adds-tag@example.com", "plain@example.com"}
    assert rig.stats()["bulk_to_sync"] == 2
    assert rig.api.calls == []


def test_a_batch_that_lost_a_lease_while_waiting_is_not_sent(rig: Rig) -> None:
    """If an email's lease ran out while its batch waited to submit (and the sync path took it), the old body is never sent: the batch releases the rest and ends, and the emails are claimed afresh."""
    contacts = names(3, "w")
    batch = rig.claim(contacts)
    assert rig.run_due().event == "bulk.built"
    lost = sorted(contacts)[0]
    rig.redis.hset(rig.keys.lease_tokens, lost, "someone-else")  # the sync path took it

    result = rig.run_due()

    assert result.event == "bulk.leases_lost"
    assert rig.api.posted_emails() == []
    assert rig.redis.exists(rig.keys.bulk_batch(batch.id)) == 0
    held = rig.zset(rig.keys.bulk_leases)
    assert all(score <= rig.now_ms() for email, score in held.items() if email != lost)
