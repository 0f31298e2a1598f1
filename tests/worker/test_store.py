"""worker.store: last-write-wins merging, scheduling, leases and sync completion on real Redis."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._layout import readable_contact, stamps
from worker._lua import load_script, script_source
from worker.keys import CONSUMER_GROUP, Keys
from worker.pump import decode_entry
from worker.schema import ContactEvent, decode_event, encode_event
from worker.stamp import Order, order_key, parse_stamp, stamp
from worker.store import Begun, Claim, Claimed, IngestResult, InvalidEntry, MergeStore

EMAIL = "jon@example.com"
T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)
TTL_S = 3600.0
LEASE_S = 60.0


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> MergeStore:
    merge_store = MergeStore(redis_client, Keys(key_prefix))
    merge_store.ensure_group()
    return merge_store


_entry_ms = itertools.count(1_764_421_200_000)


def next_entry_id() -> str:
    return f"{next(_entry_ms)}-0"


def event(at_s: float = 0, email: str = EMAIL, **contact: Any) -> ContactEvent:
    """A validated event that occurred ``at_s`` seconds after T0."""
    _, text = encode_event({"email": email, **contact}, occurred_at=T0 + dt.timedelta(seconds=at_s))
    return decode_event(text)


def ingest(
    store: MergeStore, *events: ContactEvent, debounce_s: float = 0, entry_id: str | None = None
) -> IngestResult:
    pairs = [(entry_id or next_entry_id(), item) for item in events]
    return store.ingest(pairs, [], debounce_s=debounce_s)


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def contact_hash(store: MergeStore, email: str = EMAIL) -> dict[str, str]:
    return readable_contact(store.redis.hgetall(store.keys.contact(email)), email)


def claim_one(store: MergeStore, email: str = EMAIL) -> Claim:
    claims = store.claim_due(max_leases=100, lease_s=LEASE_S).claims
    assert [claim.email for claim in claims] == [email]
    return claims[0]


def begin(store: MergeStore, claim: Claim) -> Begun:
    return store.begin_sync(claim.email, claim.lease, lease_s=LEASE_S, confirmed_ttl_s=TTL_S)


def finish(store: MergeStore, claim: Claim, outcome: Any = "success", **options: Any) -> str:
    return store.finish_sync(claim.email, claim.lease, outcome, confirmed_ttl_s=TTL_S, **options)


def sync_successfully(store: MergeStore, email: str = EMAIL) -> Begun:
    claim = claim_one(store, email)
    begun = begin(store, claim)
    assert finish(store, claim) == "success"
    return begun


def pending_values(store: MergeStore, email: str = EMAIL) -> dict[str, str]:
    return {k[2:]: v for k, v in contact_hash(store, email).items() if k.startswith("p:")}


def due_score(store: MergeStore, email: str = EMAIL) -> float | None:
    return store.redis.zscore(store.keys.due, email)


def test_ingest_merges_attributes_into_pending(store: MergeStore) -> None:
    """Events for one email merge per attribute: each attribute keeps its newest value."""
    result = ingest(
        store,
        event(1, firstName="John", lastName="Doe"),
        event(2, firstName="Jonathan"),
        event(3, fieldValues=[{"field": 6, "value": "x"}]),
    )
    assert result == IngestResult(merged=3, stale=0, invalid=0)
    assert pending_values(store) == {
        "email": EMAIL,
        "firstName": "Jonathan",
        "lastName": "Doe",
        "field:6": "x",
    }
    assert contact_hash(store)["m:n"] == "3"


def test_older_event_changes_nothing_and_counts_as_stale(store: MergeStore) -> None:
    """An event older than the pending value for every attribute it carries is stale."""
    ingest(store, event(10, firstName="New", lastName="Newer"))
    assert ingest(store, event(5, firstName="Old")) == IngestResult(merged=0, stale=1)
    assert pending_values(store)["firstName"] == "New"
    assert int(store.redis.hget(store.keys.stats, "events_stale") or 0) == 1


def test_last_write_wins_per_attribute_not_per_event(store: MergeStore) -> None:
    """An older event still sets attributes that nothing newer has touched."""
    ingest(store, event(10, firstName="New"))
    assert ingest(store, event(5, firstName="Old", lastName="Doe")).merged == 1
    assert pending_values(store) == {"email": EMAIL, "firstName": "New", "lastName": "Doe"}


def test_out_of_order_arrival_gives_the_same_result(store: MergeStore) -> None:
    """Events applied newest-first end in the same state as oldest-first."""
    ingest(store, event(3, firstName="C"), event(1, firstName="A"), event(2, firstName="B"))
    assert pending_values(store)["firstName"] == "C"


def test_ties_go_to_the_later_stream_entry(store: MergeStore) -> None:
    """With equal occurred_at, the entry with the higher stream id wins, whatever the arrival order."""
    later = event(0, firstName="Later")
    earlier = event(0, firstName="Earlier")
    assert ingest(store, later, entry_id="1764421200500-1").merged == 1
    assert ingest(store, earlier, entry_id="1764421200500-0").stale == 1
    assert ingest(store, earlier, entry_id="1764421200499-9").stale == 1
    assert pending_values(store)["firstName"] == "Later"
    assert ingest(store, earlier, entry_id="1764421200500-2").merged == 1
    assert pending_values(store)["firstName"] == "Earlier"


def test_email_only_event_schedules_a_sync(store: MergeStore) -> None:
    """An event with only an email still creates the contact: it is due and its sync sends the email."""
    assert ingest(store, event(0)).merged == 1
    assert due_score(store) is not None
    begun = begin(store, claim_one(store))
    assert begun.status == "send"
    assert begun.attributes == {"email": EMAIL}


def test_email_only_event_for_a_known_contact_changes_nothing(store: MergeStore) -> None:
    """Once ActiveCampaign has the contact, an event with only its email is stale: no sync."""
    ingest(store, event(0, firstName="A"))
    sync_successfully(store)
    assert ingest(store, event(5)) == IngestResult(merged=0, stale=1)
    assert due_score(store) is None
    assert ingest(store, event(6, firstName="A")).merged == 1
    assert begin(store, claim_one(store)) == Begun("unchanged", merged_events=1)


def test_values_keep_the_stamp_of_their_event(store: MergeStore) -> None:
    """Each stored value carries its event's occurred_at and stream position, in every state."""
    ingest(store, event(1, firstName="A"), entry_id="1764421200001-7")
    occurred = int((T0 + dt.timedelta(seconds=1)).timestamp() * 1_000_000)
    raw = store.redis.hgetall(store.keys.contact(EMAIL))
    assert stamps(raw) == {
        "p:email": Order(occurred, 1764421200001, 7),
        "p:firstName": Order(occurred, 1764421200001, 7),
    }
    sync_successfully(store)
    raw = store.redis.hgetall(store.keys.contact(EMAIL))
    assert stamps(raw) == {"c:firstName": Order(occurred, 1764421200001, 7)}


def test_first_change_is_due_after_the_debounce(store: MergeStore) -> None:
    """The first change to an idle email is due debounce_s later, by the Redis clock."""
    before = redis_now_ms(store.redis)
    ingest(store, event(0, firstName="A"), debounce_s=30)
    after = redis_now_ms(store.redis)
    score = due_score(store)
    assert score is not None
    assert before + 30_000 <= score <= after + 30_000


def test_later_changes_do_not_push_the_sync_back(store: MergeStore) -> None:
    """Further changes merge into the scheduled sync without moving its due time."""
    ingest(store, event(0, firstName="A"), debounce_s=30)
    first = due_score(store)
    ingest(store, event(1, firstName="B"), debounce_s=30)
    ingest(store, event(2, lastName="C"), debounce_s=300)
    assert due_score(store) == first


def test_stale_event_schedules_nothing(store: MergeStore) -> None:
    """An event that changes nothing does not make an idle email due."""
    ingest(store, event(10, firstName="A"))
    sync_successfully(store)
    assert due_score(store) is None
    assert ingest(store, event(5, firstName="Old")).stale == 1
    assert due_score(store) is None


def test_invalid_entries_become_dead_letters_and_leave_the_stream(store: MergeStore) -> None:
    """Bad entries are dead-lettered with their errors and are acked and deleted."""
    keys = store.keys
    store.redis.xadd(keys.events, {"event": "not json"})
    store.redis.xadd(keys.events, {"something": "else"})
    store.redis.xadd(keys.events, {"event": json.dumps({"v": 1, "id": "abc"})})
    entries = store.read_events("c1", count=10, block_ms=None)
    assert store.redis.xpending(keys.events, CONSUMER_GROUP)["pending"] == 3
    decoded = [decode_entry(entry_id, fields) for entry_id, fields in entries]
    invalid = [item for item in decoded if isinstance(item, InvalidEntry)]
    assert len(invalid) == 3
    assert store.ingest([], invalid, debounce_s=0) == IngestResult(invalid=3)
    assert store.redis.xpending(keys.events, CONSUMER_GROUP)["pending"] == 0
    assert store.redis.xlen(keys.events) == 0
    letters = store.redis.xrange(keys.dead)
    assert len(letters) == 3
    first = {k.decode(): v.decode() for k, v in letters[0][1].items()}
    assert first["reason"] == "invalid_event"
    assert first["raw"] == "not json"
    assert first["entry"] == entries[0][0]
    assert "Not valid JSON" in first["errors"]
    third = {k.decode(): v.decode() for k, v in letters[2][1].items()}
    assert third["event_id"] == "abc"
    assert int(store.redis.hget(keys.stats, "dead_lettered") or 0) == 3


def test_valid_entries_are_acked_and_deleted(store: MergeStore) -> None:
    """Merged entries leave the stream and the pending-entries list in the same step."""
    _, text = encode_event({"email": EMAIL, "firstName": "A"}, occurred_at=T0)
    store.redis.xadd(store.keys.events, {"event": text})
    (entry_id, fields), *_ = store.read_events("c1", count=10, block_ms=None)
    decoded = decode_entry(entry_id, fields)
    assert isinstance(decoded, ContactEvent)
    assert store.ingest([(entry_id, decoded)], [], debounce_s=0).merged == 1
    assert store.redis.xpending(store.keys.events, CONSUMER_GROUP)["pending"] == 0
    assert store.redis.xlen(store.keys.events) == 0


def test_claim_due_respects_max_leases(store: MergeStore) -> None:
    """At most max_leases emails are leased at once; more are claimed only when leases end."""
    emails = [f"user{n}@example.com" for n in range(3)]
    ingest(store, *(event(0, email=email) for email in emails))
    claimed = store.claim_due(max_leases=2, lease_s=LEASE_S)
    claims = claimed.claims
    assert claimed.expired == 0
    assert len(claims) == 2
    assert store.claim_due(max_leases=2, lease_s=LEASE_S) == Claimed()
    begin(store, claims[0])
    finish(store, claims[0])
    more = store.claim_due(max_leases=2, lease_s=LEASE_S).claims
    assert [claim.email for claim in more] == sorted(set(emails) - {c.email for c in claims})


def test_not_yet_due_emails_are_not_claimed(store: MergeStore) -> None:
    """An email still inside its debounce is not claimed."""
    ingest(store, event(0), debounce_s=60)
    assert store.claim_due(max_leases=10, lease_s=LEASE_S) == Claimed()


def test_expired_leases_return_to_due(store: MergeStore) -> None:
    """A lease whose time ran out (dead worker) becomes due and is claimed with a new token."""
    ingest(store, event(0, firstName="A"))
    old = claim_one(store)
    store.redis.zadd(store.keys.leases, {EMAIL: 0})  # the lease ran out long ago
    claimed = store.claim_due(max_leases=10, lease_s=LEASE_S)
    claims = claimed.claims
    assert claimed.expired == 1
    assert [claim.email for claim in claims] == [EMAIL]
    assert claims[0].lease != old.lease
    assert begin(store, old).status == "stale"
    assert begin(store, claims[0]).attributes == {"email": EMAIL, "firstName": "A"}


def test_lease_tokens_are_unique_even_within_one_millisecond(store: MergeStore) -> None:
    """An email whose lease expires and is claimed again in the same millisecond gets a new token."""
    ingest(store, event(0, firstName="A"))
    claim_script = load_script(store.redis, "claim")
    keys = [
        store.keys.due,
        store.keys.leases,
        store.keys.lease_tokens,
        store.keys.claims,
        store.keys.rate_pause,
        store.keys.bulk_mode,
        store.keys.bulk_leases,
    ]
    args = [10, int(LEASE_S * 1000), 1000, 2]
    # One transaction: claim, let the lease run out, claim again, all within microseconds.
    pipe = store.redis.pipeline(transaction=True)
    claim_script(keys=keys, args=args, client=pipe)
    pipe.zadd(store.keys.leases, {EMAIL: 0})
    claim_script(keys=keys, args=args, client=pipe)
    first, _, second = pipe.execute()
    assert first[2:3] == second[2:3] == [EMAIL.encode()]
    assert second[0] == 1
    assert first[3] != second[3]
    assert begin(store, Claim(EMAIL, first[3].decode())).status == "stale"
    assert begin(store, Claim(EMAIL, second[3].decode())).status == "send"


def test_begin_with_a_lost_lease_is_stale(store: MergeStore) -> None:
    """begin_sync with a token that is not the current lease changes nothing."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    before = contact_hash(store)
    assert store.begin_sync(
        EMAIL, "not-the-token", lease_s=LEASE_S, confirmed_ttl_s=TTL_S
    ) == Begun("stale")
    assert contact_hash(store) == before
    assert begin(store, claim).status == "send"


def test_a_lease_token_begins_sending_only_once(store: MergeStore) -> None:
    """A second begin_sync with the same token (a task redelivered after its pool process died mid-request) is stale; the email goes out again only under a new lease."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    assert begin(store, claim).status == "send"
    before = contact_hash(store)
    assert begin(store, claim) == Begun("stale")
    assert contact_hash(store) == before
    store.redis.zadd(store.keys.leases, {EMAIL: 0})  # the lease runs out
    (again,) = store.claim_due(max_leases=10, lease_s=LEASE_S).claims
    assert begin(store, again).attributes == {"email": EMAIL, "firstName": "A"}


def test_begin_sends_pending_values_and_renews_the_lease(store: MergeStore) -> None:
    """begin_sync moves pending values in flight, reports merged events, attempt 1 and the times."""
    ingest(store, event(0, firstName="A"), event(1, lastName="B"))
    claim = claim_one(store)
    before = redis_now_ms(store.redis)
    begun = begin(store, claim)
    assert begun.status == "send"
    assert begun.merged_events == 2
    assert begun.attempt == 1
    assert begun.known is False
    assert begun.attributes == {"email": EMAIL, "firstName": "A", "lastName": "B"}
    assert begun.first_attempt_ms == begun.now_ms >= before
    assert pending_values(store) == {}
    lease_until = store.redis.zscore(store.keys.leases, EMAIL)
    assert lease_until is not None
    assert lease_until >= before + LEASE_S * 1000


def test_confirmed_equal_values_are_unchanged_without_payload(store: MergeStore) -> None:
    """When every pending value equals the confirmed one, begin_sync says unchanged and sends nothing."""
    ingest(store, event(0, firstName="John", lastName="Doe"))
    sync_successfully(store)
    ingest(store, event(5, firstName="John"), event(6, lastName="Doe"))
    claim = claim_one(store)
    assert begin(store, claim) == Begun("unchanged", merged_events=2)
    assert store.redis.zscore(store.keys.leases, EMAIL) is None
    assert store.redis.hget(store.keys.lease_tokens, EMAIL) is None
    assert int(store.redis.hget(store.keys.stats, "unchanged") or 0) == 1


def test_only_differing_attributes_are_sent(store: MergeStore) -> None:
    """begin_sync drops attributes equal to the confirmed values and sends the rest."""
    ingest(store, event(0, firstName="John", lastName="Doe", phone="1"))
    sync_successfully(store)
    ingest(store, event(5, firstName="John", lastName="Smith", phone="1"))
    begun = begin(store, claim_one(store))
    assert begun.status == "send"
    assert begun.known is True
    assert begun.attributes == {"lastName": "Smith"}


def test_confirmed_values_keep_older_events_out(store: MergeStore) -> None:
    """After a sync, an event older than the confirmed value of an attribute is stale."""
    ingest(store, event(10, firstName="Confirmed"))
    sync_successfully(store)
    assert ingest(store, event(5, firstName="Late")).stale == 1
    assert due_score(store) is None


def test_success_moves_values_to_confirmed_with_ttl(store: MergeStore) -> None:
    """finish_sync success records confirmed values; with nothing pending the hash gets the TTL."""
    ingest(store, event(0, firstName="A"))
    sync_successfully(store)
    state = contact_hash(store)
    assert state["c:firstName"] == "A"
    assert "c:email" not in state  # the key holds it; m:known says ActiveCampaign has it
    assert state["m:known"] == "1"
    assert not any(k.startswith(("p:", "f:")) for k in state)
    for gone in ("m:begun", "m:attempt", "m:since", "m:fn"):
        assert gone not in state
    assert store.redis.hget(store.keys.lease_tokens, EMAIL) is None
    assert 0 < store.redis.pttl(store.keys.contact(EMAIL)) <= TTL_S * 1000
    assert store.redis.zscore(store.keys.leases, EMAIL) is None
    assert due_score(store) is None


def test_zero_ttl_keeps_confirmed_state(store: MergeStore) -> None:
    """A confirmed TTL of 0 keeps the contact hash forever."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    store.begin_sync(EMAIL, claim.lease, lease_s=LEASE_S, confirmed_ttl_s=0)
    store.finish_sync(EMAIL, claim.lease, "success", confirmed_ttl_s=0)
    assert store.redis.pttl(store.keys.contact(EMAIL)) == -1


def test_changes_while_leased_are_scheduled_at_once_after_finish(store: MergeStore) -> None:
    """A change during a sync is not scheduled then, but is due immediately when the sync ends."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    begin(store, claim)
    ingest(store, event(1, firstName="B"), debounce_s=60)
    assert due_score(store) is None
    before = redis_now_ms(store.redis)
    assert finish(store, claim) == "success"
    score = due_score(store)
    assert score is not None
    assert before <= score <= redis_now_ms(store.redis)
    assert store.redis.pttl(store.keys.contact(EMAIL)) == -1
    assert begin(store, claim_one(store)).attributes == {"firstName": "B"}


def test_retry_merges_in_flight_back_under_newer_pending(store: MergeStore) -> None:
    """A retry puts in-flight values back as pending, but a newer pending value is kept."""
    ingest(store, event(0, firstName="A", lastName="L"))
    claim = claim_one(store)
    begin(store, claim)
    ingest(store, event(1, firstName="B"))
    assert finish(store, claim, "retry", retry_delay_s=0) == "retry"
    assert pending_values(store) == {"email": EMAIL, "firstName": "B", "lastName": "L"}
    state = contact_hash(store)
    assert state["m:n"] == "2"
    assert state["m:attempt"] == "1"
    begun = begin(store, claim_one(store))
    assert begun.attributes == {"email": EMAIL, "firstName": "B", "lastName": "L"}
    assert begun.attempt == 2
    assert begun.merged_events == 2


def test_retry_is_scheduled_after_the_delay(store: MergeStore) -> None:
    """A retry makes the email due retry_delay_s from now, by the Redis clock."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    begin(store, claim)
    before = redis_now_ms(store.redis)
    finish(store, claim, "retry", retry_delay_s=12.5)
    score = due_score(store)
    assert score is not None
    assert before + 12_500 <= score <= redis_now_ms(store.redis) + 12_500
    assert store.redis.zscore(store.keys.leases, EMAIL) is None


def test_uncounted_retry_keeps_the_attempt_number(store: MergeStore) -> None:
    """count_attempt=False hands the change back without counting a failed attempt."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    begin(store, claim)
    finish(store, claim, "retry", count_attempt=False)
    assert "m:attempt" not in contact_hash(store)
    assert begin(store, claim_one(store)).attempt == 1


def test_first_attempt_time_survives_retries(store: MergeStore) -> None:
    """first_attempt_ms stays at the first attempt across retries, so retry age accumulates."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    first = begin(store, claim)
    finish(store, claim, "retry")
    again = begin(store, claim_one(store))
    assert again.first_attempt_ms == first.first_attempt_ms
    assert again.now_ms >= first.now_ms


def test_dead_writes_a_dead_letter_with_attributes_and_reason(store: MergeStore) -> None:
    """finish_sync dead writes a dead letter with the in-flight attributes, reason, status and errors."""
    entry_id = next_entry_id()
    ingest(
        store, event(0, firstName="A", fieldValues=[{"field": 6, "value": "x"}]), entry_id=entry_id
    )
    claim = claim_one(store)
    begin(store, claim)
    result = finish(
        store, claim, "dead", reason="api_rejected", status=422, errors=["Email is invalid"]
    )
    assert result == "dead"
    ((_, raw),) = store.redis.xrange(store.keys.dead)
    letter = {k.decode(): v.decode() for k, v in raw.items()}
    assert letter["reason"] == "api_rejected"
    assert letter["email"] == EMAIL
    assert letter["status"] == "422"
    assert json.loads(letter["errors"]) == ["Email is invalid"]
    assert letter["attempts"] == "1"
    attributes = json.loads(letter["attributes"])
    assert {name: value for name, (value, _) in attributes.items()} == {
        "email": EMAIL,
        "firstName": "A",
        "field:6": "x",
    }
    occurred = int(T0.timestamp() * 1_000_000)
    assert {key for _, key in attributes.values()} == {order_key(occurred, entry_id)}
    state = contact_hash(store)
    assert not any(k.startswith(("p:", "f:", "c:")) for k in state)
    assert due_score(store) is None
    assert int(store.redis.hget(store.keys.stats, "dead_lettered") or 0) == 1


def test_stale_finish_changes_nothing(store: MergeStore) -> None:
    """finish_sync with a lost lease returns stale and leaves every key as it was."""
    ingest(store, event(0, firstName="A"))
    claim = claim_one(store)
    begin(store, claim)
    before = (
        contact_hash(store),
        store.redis.zrange(store.keys.leases, 0, -1, withscores=True),
        store.redis.zrange(store.keys.due, 0, -1, withscores=True),
        store.redis.xlen(store.keys.dead),
    )
    for outcome in ("success", "retry", "dead"):
        assert store.finish_sync(EMAIL, "other", outcome, confirmed_ttl_s=TTL_S) == "stale"
    after = (
        contact_hash(store),
        store.redis.zrange(store.keys.leases, 0, -1, withscores=True),
        store.redis.zrange(store.keys.due, 0, -1, withscores=True),
        store.redis.xlen(store.keys.dead),
    )
    assert after == before


def test_finish_counter_is_incremented(store: MergeStore) -> None:
    """The optional stats counter is incremented on completion."""
    ingest(store, event(0))
    claim = claim_one(store)
    begin(store, claim)
    finish(store, claim, counter="synced_updated")
    assert store.redis.hget(store.keys.stats, "synced_updated") == b"1"


def test_dead_worker_in_flight_values_merge_into_the_next_begin(store: MergeStore) -> None:
    """Values left in flight by a dead worker are sent by the next holder, newest first."""
    ingest(store, event(0, firstName="A", lastName="L"))
    old = claim_one(store)
    begin(store, old)
    ingest(store, event(1, firstName="B"))
    store.redis.zadd(store.keys.leases, {EMAIL: 0})
    (claim,) = store.claim_due(max_leases=10, lease_s=LEASE_S).claims
    begun = begin(store, claim)
    assert begun.attributes == {"email": EMAIL, "firstName": "B", "lastName": "L"}
    assert begun.merged_events == 2


MAX_US = 2**53 - 1
MAX_MS = 10**13 - 1
MAX_SEQ = 2**32 - 1


@given(
    a=st.integers(0, MAX_US),
    b=st.integers(0, MAX_US),
    ms1=st.integers(0, MAX_MS),
    ms2=st.integers(0, MAX_MS),
    seq1=st.integers(0, MAX_SEQ),
    seq2=st.integers(0, MAX_SEQ),
)
def test_stamps_and_order_keys_sort_like_their_parts(
    a: int, b: int, ms1: int, ms2: int, seq1: int, seq2: int
) -> None:
    """stamp(a, id1) < stamp(b, id2) as bytes exactly when (a, ms1, seq1) < (b, ms2, seq2)."""
    first, second = stamp(a, f"{ms1}-{seq1}"), stamp(b, f"{ms2}-{seq2}")
    assert len(first) == len(second) == 17
    assert (first < second) == ((a, ms1, seq1) < (b, ms2, seq2))
    assert (first == second) == ((a, ms1, seq1) == (b, ms2, seq2))
    assert parse_stamp(first) == Order(a, ms1, seq1)
    keys = order_key(a, f"{ms1}-{seq1}"), order_key(b, f"{ms2}-{seq2}")
    assert len(keys[0]) == len(keys[1]) == 39
    assert (keys[0] < keys[1]) == (first < second)


@given(
    a=st.integers(-(10**18), 10**18),
    b=st.integers(-(10**18), 10**18),
    ms=st.integers(0, MAX_MS),
)
def test_stamps_never_invert_out_of_range_times(a: int, b: int, ms: int) -> None:
    """Times before 1970 or after 2255 are clamped: they tie and never sort backwards."""
    first, second = stamp(a, f"{ms}-0"), stamp(b, f"{ms}-1")
    assert len(first) == len(second) == 17
    if a < b:
        assert first < second
    if a > b:
        assert first > second or first[:7] == second[:7]


def test_stamp_of_an_id_without_sequence() -> None:
    """A stream id without a sequence part counts as sequence 0."""
    assert stamp(5, "1764421200000") == stamp(5, "1764421200000-0")


_LUA_ORDER = (
    script_source("_layout") + "\nreturn {later(ARGV[1], ARGV[2]) and 1 or 0, order_key(ARGV[1])}"
)
_parts = st.tuples(st.integers(0, MAX_US), st.integers(0, MAX_MS), st.integers(0, MAX_SEQ))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one client for all
@given(first=_parts, second=_parts | st.just((0, 0, 0)))
def test_lua_orders_stamps_like_python(
    redis_client: redis.Redis, first: tuple[int, int, int], second: tuple[int, int, int]
) -> None:
    """_layout.lua's later() and order_key() agree with the byte order and worker.stamp."""
    a, b = stamp(first[0], f"{first[1]}-{first[2]}"), stamp(second[0], f"{second[1]}-{second[2]}")
    later, key = redis_client.eval(_LUA_ORDER, 0, a, b)
    assert later == (1 if a > b else 0)
    assert key.decode() == order_key(first[0], f"{first[1]}-{first[2]}")


# -- tags, lists, the account; partial completion (issue 10) -----------------------------


def raw_event(at_s: float, email: str = EMAIL, **attributes: str) -> ContactEvent:
    """An event with attributes as the pump hands them to the store (references resolved)."""
    return ContactEvent(
        id=f"e-{at_s}",
        occurred_at=T0 + dt.timedelta(seconds=at_s),
        source=None,
        email=email,
        attributes=attributes,
    )


def test_tags_lists_and_the_account_merge_last_write_wins_each(store: MergeStore) -> None:
    """Each tag, each list and the account is an attribute of its own; an older event never undoes a newer one."""
    ingest(store, raw_event(5, **{"tag:trial": "1Trial", "list:3": "1", "account": "Acme"}))
    ingest(store, raw_event(1, **{"tag:trial": "0Trial", "list:3": "2", "account": "Old"}))
    ingest(store, raw_event(6, **{"tag:vip": "1VIP"}))
    assert pending_values(store) == {
        "email": EMAIL,
        "tag:trial": "1Trial",
        "tag:vip": "1VIP",
        "list:3": "1",
        "account": "Acme",
    }


def test_a_tag_added_then_removed_in_one_window_sends_only_the_removal(store: MergeStore) -> None:
    """The later removal wins the merge; a removal ActiveCampaign already confirmed sends nothing."""
    ingest(store, raw_event(0, **{"tag:trial": "1Trial"}), raw_event(1, **{"tag:trial": "0Trial"}))
    claim = claim_one(store)
    assert begin(store, claim).attributes == {"email": EMAIL, "tag:trial": "0Trial"}
    assert finish(store, claim) == "success"
    ingest(store, raw_event(2, **{"tag:trial": "0trial"}))  # the same flag in other letters
    assert begin(store, claim_one(store)) == Begun("unchanged", merged_events=1)


def test_partial_failure_confirms_what_succeeded_and_retries_only_the_rest(
    store: MergeStore,
) -> None:
    """The sync and one tag succeeded, the list call failed: the retry sends only the list, and the contact id is kept."""
    ingest(store, raw_event(0, firstName="A", **{"tag:trial": "1Trial", "list:3": "1"}))
    claim = claim_one(store)
    assert begin(store, claim).contact_id is None
    assert (
        finish(
            store,
            claim,
            "retry",
            contact_id="77",
            confirmed=["email", "firstName", "tag:trial"],
            retry_delay_s=0,
        )
        == "retry"
    )
    state = contact_hash(store)
    assert (state["c:firstName"], state["c:tag:trial"], state["m:id"], state["m:known"]) == (
        "A",
        "1Trial",
        "77",
        "1",
    )
    again = begin(store, claim_one(store))
    assert again.attributes == {"list:3": "1"}
    assert (again.known, again.contact_id) == (True, "77")


def test_a_partial_dead_letter_holds_only_what_failed(store: MergeStore) -> None:
    """A permanent failure of one list call after the sync succeeded dead-letters that list alone."""
    ingest(store, raw_event(0, firstName="A", **{"list:9": "1"}))
    claim = claim_one(store)
    begin(store, claim)
    finish(store, claim, "dead", reason="api_rejected", confirmed=["email", "firstName"])
    ((_, letter),) = store.redis.xrange(store.keys.dead)
    assert json.loads(letter[b"attributes"]).keys() == {"list:9"}
    assert contact_hash(store)["c:firstName"] == "A"
