"""Several emails per sync task at high rate limits: how many, and the time budget (real Redis)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.worker.test_store import event, ingest
from worker import tasks
from worker.keys import Keys
from worker.settings import Secret, Settings
from worker.store import MergeStore


@pytest.mark.parametrize(
    ("rate", "chunk"), [(5, 1), (49, 1), (50, 1), (100, 2), (150, 3), (1000, 20), (5000, 20)]
)
def test_emails_per_task_follow_the_rate_limit(rate: float, chunk: int) -> None:
    """One email per task at ordinary rates; from 100/s one more per 50/s, at most 20."""
    assert Settings(rate_limit=rate).sync_chunk == chunk


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: list[dict[str, Any]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append({"name": name, **options})


def test_a_chunk_is_sent_as_one_task_with_masked_emails() -> None:
    """At 150/s, seven claims make three tasks of 3, 3 and 1 emails; Flower sees them masked."""
    app = App(Settings(rate_limit=150))
    claims = [tasks.Claim(f"user{n}@example.com", f"t{n}") for n in range(7)]
    tasks.enqueue_syncs(app, claims)  # type: ignore[arg-type]
    assert [len(task["args"][0]) for task in app.sent] == [3, 3, 1]
    assert {task["name"] for task in app.sent} == {tasks.SYNC_MANY_TASK}
    assert app.sent[0]["args"][1] == ["t0", "t1", "t2"]
    assert "user0@example.com" not in app.sent[0]["argsrepr"]
    assert "u***@example.com" in app.sent[0]["argsrepr"]


def test_emails_not_started_within_the_budget_are_handed_back_due(
    redis_client: redis.Redis, redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a chunk's time budget is spent, the emails it has not started are handed back, due at once, with no attempt counted, so their leases never run out waiting."""
    settings = Settings(
        activecampaign_url="http://127.0.0.1:9",
        api_token=Secret("t" * 8),
        key_prefix=key_prefix,
        redis_url=(
            redis_client.connection_pool.connection_kwargs.get("path")
            and "unix://" + redis_client.connection_pool.connection_kwargs["path"]
        )
        or f"redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0",
    )
    store = MergeStore(redis_client, Keys(key_prefix))
    emails = [f"c{n}@example.com" for n in range(4)]
    for email in emails:
        ingest(store, event(0, email, firstName="A"))
    claims = store.claim_due(max_leases=10, lease_s=60).claims
    # The chunk starts at 0; the first two emails start within the budget, the third after.
    clock = iter([0.0, 1.0, 2.0, settings.timings.limiter_max_wait_s + 1])
    synced: list[str] = []
    monkeypatch.setattr(
        tasks,
        "run_sync_task",
        lambda app, email, lease, destination: synced.append(email) or "contact.synced",
    )
    result = tasks.run_sync_many(
        App(settings),  # type: ignore[arg-type]
        [claim.email for claim in claims],
        [claim.lease for claim in claims],
        monotonic=lambda: next(clock),
    )
    assert result == {"contact.synced": 2, "handed_back": 2}
    handed_back = {claim.email for claim in claims} - set(synced)
    assert len(handed_back) == 2
    due = {member.decode() for member in redis_client.zrange(Keys(key_prefix).due, 0, -1)}
    assert due == handed_back
    assert redis_client.zcard(Keys(key_prefix).leases) == 2  # the two it synced (stubbed)
    for email in handed_back:
        assert redis_client.hget(Keys(key_prefix).contact(email), "m:attempt") is None
