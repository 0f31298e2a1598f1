"""worker.sync.sync_contact: outcomes with a real store and limiter and a fake API client."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
import redis

from worker.client import SyncResult
from worker.errors import (
    ApiConfigError,
    ApiError,
    ApiRejected,
    ApiServerError,
    ApiTransportError,
    RateLimited,
)
from worker.keys import Keys
from worker.ratelimit import RateLimiter
from worker.schema import decode_event, encode_event
from worker.settings import Settings
from worker.store import Claim, MergeStore
from worker.sync import SyncOutcome, sync_contact

EMAIL = "jon@example.com"
T0 = dt.datetime(2026, 11, 29, 13, 0, 0, tzinfo=dt.UTC)
_entry_ms = itertools.count(1_764_421_200_000)


class FakeClient:
    """Stands in for ActiveCampaignClient: records contacts, answers from a script."""

    def __init__(self, *answers: SyncResult | ApiError) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def sync_contact(self, contact: dict[str, Any]) -> SyncResult:
        self.sent.append(contact)
        answer = self.answers.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return answer


class UpperRng(random.Random):
    """uniform() returns its upper bound, so delays are the full ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


CREATED = SyncResult(201, "113", 12.3)


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    return Settings(
        activecampaign_url="https://acct.api-us1.com",
        key_prefix=key_prefix,
        debounce_s=0.0,
        backoff_base_s=2.0,
        backoff_cap_s=60.0,
        config_error_backoff_s=120.0,
    )


@pytest.fixture
def store(redis_client: redis.Redis, settings: Settings) -> MergeStore:
    merge_store = MergeStore(redis_client, Keys(settings.key_prefix))
    merge_store.ensure_group()
    return merge_store


@pytest.fixture
def limiter(redis_client: redis.Redis, settings: Settings) -> RateLimiter:
    return RateLimiter(
        redis_client, Keys(settings.key_prefix), rate_per_s=settings.rate_limit, sleep=never_sleep
    )


Run = Callable[..., SyncOutcome]


@pytest.fixture
def run(store: MergeStore, limiter: RateLimiter, settings: Settings) -> Run:
    def run_once(client: FakeClient, claim: Claim) -> SyncOutcome:
        return sync_contact(
            claim.email,
            claim.lease,
            store=store,
            client=client,  # type: ignore[arg-type]
            limiter=limiter,
            settings=settings,
            rng=UpperRng(),
        )

    return run_once


def change(store: MergeStore, at_s: float = 0, **contact: Any) -> Claim:
    """Ingest one change to EMAIL and claim it."""
    _, text = encode_event({"email": EMAIL, **contact}, occurred_at=T0 + dt.timedelta(seconds=at_s))
    store.ingest([(f"{next(_entry_ms)}-0", decode_event(text))], [], debounce_s=0)
    claims = store.claim_due(max_leases=10, lease_s=60).claims
    assert [claim.email for claim in claims] == [EMAIL]
    return claims[0]


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_synced_outcome(store: MergeStore, run: Run) -> None:
    """A differing change is sent once and reported as contact.synced with its fields."""
    _, text = encode_event({"email": EMAIL, "firstName": "John"}, occurred_at=T0)
    _, text2 = encode_event(
        {"email": EMAIL, "lastName": "Doe", "fieldValues": [{"field": 6, "value": "x"}]},
        occurred_at=T0 + dt.timedelta(seconds=1),
    )
    store.ingest([("1-0", decode_event(text)), ("2-0", decode_event(text2))], [], debounce_s=0)
    (claim,) = store.claim_due(max_leases=10, lease_s=60).claims
    client = FakeClient(CREATED)
    outcome = run(client, claim)
    assert outcome.event == "contact.synced"
    assert outcome.level == "info"
    assert outcome.fields["email"] == EMAIL
    assert outcome.fields["fields_sent"] == ["field:6", "firstName", "lastName"]
    assert outcome.fields["merged_events"] == 2
    assert outcome.fields["attempt"] == 1
    assert outcome.fields["contact_id"] == "113"
    assert outcome.fields["action"] == "unknown"
    assert outcome.fields["status"] == 201
    assert client.sent == [
        {
            "email": EMAIL,
            "firstName": "John",
            "lastName": "Doe",
            "fieldValues": [{"field": "6", "value": "x"}],
        }
    ]
    assert store.redis.hget(store.keys.stats, "synced_unknown") == b"1"
    assert store.redis.hget(store.keys.stats, "synced_updated") is None


def test_known_contact_is_reported_as_updated(store: MergeStore, run: Run) -> None:
    """Once a contact was confirmed, later syncs report 'updated' and count synced_updated."""
    run(FakeClient(CREATED), change(store, 0, firstName="A"))
    outcome = run(FakeClient(CREATED), change(store, 1, firstName="B"))
    assert outcome.fields["action"] == "updated"
    assert outcome.fields["fields_sent"] == ["firstName"]
    assert store.redis.hget(store.keys.stats, "synced_unknown") == b"1"
    assert store.redis.hget(store.keys.stats, "synced_updated") == b"1"


def test_a_failed_first_sync_leaves_the_contact_unknown(store: MergeStore, run: Run) -> None:
    """Only a confirmed sync makes a contact known: after a failed first attempt the retry is still 'unknown'."""
    run(FakeClient(ApiServerError(503)), change(store, 0, firstName="A"))
    store.redis.zadd(store.keys.due, {EMAIL: 0})
    (again,) = store.claim_due(max_leases=10, lease_s=60).claims
    assert run(FakeClient(CREATED), again).fields["action"] == "unknown"


def test_unchanged_outcome_sends_nothing(store: MergeStore, run: Run) -> None:
    """A change equal to what ActiveCampaign confirmed is contact.unchanged with no request."""
    run(FakeClient(CREATED), change(store, 0, firstName="John"))
    client = FakeClient()
    outcome = run(client, change(store, 1, firstName="John"))
    assert outcome == SyncOutcome("contact.unchanged", fields={"email": EMAIL, "merged_events": 1})
    assert client.sent == []


def test_lost_lease_is_skipped(store: MergeStore, run: Run) -> None:
    """A task whose lease is no longer current does nothing and sends nothing."""
    claim = change(store, 0, firstName="A")
    client = FakeClient()
    outcome = run(client, Claim(claim.email, "someone-else"))
    assert outcome.event == "contact.sync_skipped"
    assert outcome.fields["reason"] == "lease_lost"
    assert client.sent == []


@pytest.mark.parametrize("error", [ApiServerError(503), ApiTransportError("timeout: ReadTimeout")])
def test_retryable_failure_is_rescheduled_with_backoff(
    store: MergeStore, run: Run, error: ApiError
) -> None:
    """A 5xx or transport error gives contact.sync_retry and makes the email due after the delay."""
    before = redis_now_ms(store.redis)
    outcome = run(FakeClient(error), change(store, 0, firstName="A"))
    assert outcome.event == "contact.sync_retry"
    assert outcome.level == "warning"
    assert outcome.fields["delay_s"] == 2.0
    assert outcome.fields["error"] == type(error).__name__
    assert outcome.fields["attempt"] == 1
    score = store.redis.zscore(store.keys.due, EMAIL)
    assert score is not None
    assert before + 2000 <= score <= redis_now_ms(store.redis) + 2000
    assert store.redis.hget(store.keys.stats, "retries") == b"1"


def test_retry_resends_the_change_with_the_next_attempt(store: MergeStore, run: Run) -> None:
    """After a retryable failure, the next sync sends the same values as attempt 2."""
    claim = change(store, 0, firstName="A")
    run(FakeClient(ApiServerError(500)), claim)
    store.redis.zadd(store.keys.due, {EMAIL: 0})
    (again,) = store.claim_due(max_leases=10, lease_s=60).claims
    client = FakeClient(CREATED)
    outcome = run(client, again)
    assert outcome.event == "contact.synced"
    assert outcome.fields["attempt"] == 2
    assert client.sent == [{"email": EMAIL, "firstName": "A"}]


def test_config_error_retries_slowly_at_error_level(store: MergeStore, run: Run) -> None:
    """A 403 is retried after the long config backoff and logged at error level."""
    outcome = run(FakeClient(ApiConfigError(403, ["Forbidden"])), change(store, 0, firstName="A"))
    assert outcome.event == "contact.sync_retry"
    assert outcome.level == "error"
    assert outcome.fields["status"] == 403
    assert outcome.fields["errors"] == ["Forbidden"]
    assert outcome.fields["delay_s"] == 120.0


def test_rejected_change_is_dead_lettered(store: MergeStore, run: Run) -> None:
    """A 422 gives contact.dead_lettered with the API's titles, and a dead letter is written."""
    outcome = run(
        FakeClient(ApiRejected(422, ["Email is invalid"])), change(store, 0, firstName="A")
    )
    assert outcome.event == "contact.dead_lettered"
    assert outcome.level == "error"
    assert outcome.fields["reason"] == "api_rejected"
    assert outcome.fields["status"] == 422
    assert outcome.fields["errors"] == ["Email is invalid"]
    ((_, raw),) = store.redis.xrange(store.keys.dead)
    letter = {k.decode(): v.decode() for k, v in raw.items()}
    assert letter["reason"] == "api_rejected"
    assert letter["status"] == "422"
    assert json.loads(letter["errors"]) == ["Email is invalid"]
    assert json.loads(letter["attributes"])["firstName"][0] == "A"
    assert store.redis.zscore(store.keys.due, EMAIL) is None


def test_old_retryable_failure_is_dead_lettered_as_expired(
    store: MergeStore, limiter: RateLimiter, settings: Settings
) -> None:
    """Past max_retry_age_s a retryable failure becomes a retry_expired dead letter."""
    outcome = sync_contact(
        EMAIL,
        change(store, 0, firstName="A").lease,
        store=store,
        client=FakeClient(ApiServerError(503)),  # type: ignore[arg-type]
        limiter=limiter,
        settings=settings.replace(max_retry_age_s=0.0),
        rng=UpperRng(),
    )
    assert outcome.event == "contact.dead_lettered"
    assert outcome.fields["reason"] == "retry_expired"
    assert outcome.fields["status"] == 503


def test_429_pauses_every_worker(
    store: MergeStore, run: Run, limiter: RateLimiter, redis_client: redis.Redis
) -> None:
    """A 429 pauses the shared limiter for Retry-After and retries no sooner than that."""
    outcome = run(FakeClient(RateLimited(30.0)), change(store, 0, firstName="A"))
    assert outcome.event == "contact.sync_retry"
    assert outcome.fields["status"] == 429
    assert outcome.fields["retry_after_s"] == 30.0
    assert outcome.fields["delay_s"] >= 30.0
    assert 29.0 < limiter.paused_for_s(redis_client) <= 30.0
    assert limiter.try_acquire() > 29.0
    assert store.redis.hget(store.keys.stats, "rate_limited") == b"1"


def test_exhausted_limiter_defers_without_counting_an_attempt(
    store: MergeStore, run: Run, limiter: RateLimiter
) -> None:
    """When no slot comes within the wait, the change is handed back as contact.sync_deferred, due when the pause ends: not at once, which made a long Retry-After spin."""
    claim = change(store, 0, firstName="A")
    limiter.pause(3600)  # a 429 paused everyone after the email was leased
    client = FakeClient()
    outcome = run(client, claim)
    assert outcome.event == "contact.sync_deferred"
    assert outcome.level == "debug"
    assert 3590 < outcome.fields["retry_in_s"] <= 3600
    assert client.sent == []
    assert store.redis.hget(store.keys.contact(EMAIL), "m:attempt") is None
    due_ms = store.redis.zscore(store.keys.due, EMAIL)
    assert due_ms is not None
    assert due_ms >= redis_now_ms(store.redis) + 3590 * 1000
    store.redis.delete(store.keys.rate_pause)
    store.redis.zadd(store.keys.due, {EMAIL: 0})  # the hour has passed
    (again,) = store.claim_due(max_leases=10, lease_s=60).claims
    client = FakeClient(CREATED)
    assert run(client, again).fields["attempt"] == 1
    assert client.sent == [{"email": EMAIL, "firstName": "A"}]
