"""Configuration errors: a wrong token is retried slowly and never dropped; bad settings stop the worker."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import redis

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from worker import cli
from worker.deadletters import DeadLetters
from worker.keys import Keys

WRONG_TOKEN = "rotated-by-the-customer-0000"
# What worker_env sets: CONTACT_SYNC_CONFIG_ERROR_BACKOFF_S=1, CONTACT_SYNC_BACKOFF_CAP_S=2.
CONFIG_BACKOFF_BASE_S = 1.0
CONFIG_BACKOFF_CAP_S = 2.0


def _ceiling_s(attempt: int) -> float:
    return min(CONFIG_BACKOFF_CAP_S, CONFIG_BACKOFF_BASE_S * 2 ** (attempt - 1))


def _request_times(admin: EmulatorClient, email: str) -> list[tuple[float, int]]:
    return sorted(
        (item["t"], item["status"])
        for item in admin.requests_log()
        if item["path"] == "/api/3/contact/sync" and item["email"] == email
    )


def test_forbidden_is_retried_with_long_backoff_until_the_token_is_fixed(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """403s retry with equal-jitter backoff, logged at error level, nothing dead-lettered; a fixed token delivers."""
    emulator_admin.set_token(WRONG_TOKEN)
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    emails = {"alpha@example.com": "Alpha", "beta@example.com": "Beta"}
    for email, name in emails.items():
        producer.contact_changed(email, first_name=name)

    wait_until(
        lambda: all(
            sum(1 for _, status in _request_times(emulator_admin, email) if status == 403) >= 4
            for email in emails
        ),
        timeout_s=25,
        message="four 403s per email",
    )
    retries = worker.events_named("contact.sync_retry")
    assert len(retries) >= 6
    for line in retries:
        assert line["level"] == "error", line
        assert line["error"] == "ApiConfigError", line
        assert line["status"] == 403, line
        assert line["delay_s"] >= _ceiling_s(line["attempt"]) / 2, line
        assert line["delay_s"] <= _ceiling_s(line["attempt"]), line
    for email in emails:
        times = [t for t, status in _request_times(emulator_admin, email) if status == 403]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        for attempt, gap in enumerate(gaps, start=1):
            # The retry is scheduled after the 403 arrived, so the gap includes the delay.
            assert gap >= _ceiling_s(attempt) / 2 - 0.02, (email, attempt, gaps)
    assert redis_conn.xlen(keys.dead) == 0
    assert emulator_admin.contacts() == {}

    emulator_admin.set_token(TOKEN)
    wait_until(
        lambda: set(emulator_admin.contacts()) == set(emails) and drained(redis_conn, keys),
        timeout_s=20,
        message="delivery after the token is fixed",
    )
    stored = emulator_admin.contacts()
    assert {email: stored[email]["firstName"] for email in emails} == emails
    assert redis_conn.xlen(keys.dead) == 0


def test_forbidden_past_max_retry_age_becomes_a_dead_letter_and_replays(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    redis_url: str,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A permanent 403 older than max_retry_age_s is dead-lettered as retry_expired, and a replay after the fix delivers it."""
    emulator_admin.set_token(WRONG_TOKEN)
    (worker,) = workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2", CONTACT_SYNC_MAX_RETRY_AGE_S="3")
    email = "expired@example.com"
    producer.contact_changed(email, first_name="Old", last_name="Token", fields={"6": "2008-01-20"})

    dead = DeadLetters(redis_conn, keys)
    wait_until(lambda: dead.count() == 1, timeout_s=20, message="a retry_expired dead letter")
    (letter,) = dead.list()
    assert letter.reason == "retry_expired"
    assert letter.status == 403
    assert letter.email == email
    assert letter.attempts is not None
    assert letter.attempts >= 2
    assert letter.first_attempt_at is not None
    assert letter.dead_at is not None
    assert (letter.dead_at - letter.first_attempt_at).total_seconds() >= 3
    kept = {k: v for k, v in letter.as_dict()["attributes"].items() if k != "email"}
    assert kept == {"firstName": "Old", "lastName": "Token", "field:6": "2008-01-20"}
    (line,) = wait_until(
        lambda: worker.events_named("contact.dead_lettered"), timeout_s=10, message="log line"
    )
    assert (line["level"], line["reason"], line["status"]) == ("error", "retry_expired", 403)
    assert all(line["level"] == "error" for line in worker.events_named("contact.sync_retry"))
    wait_until(lambda: drained(redis_conn, keys), timeout_s=10, message="nothing left scheduled")
    assert emulator_admin.contacts() == {}

    emulator_admin.set_token(TOKEN)
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    assert cli.main(["dead-letters", "replay", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {letter.id: "replayed"}
    stored = wait_until(
        lambda: emulator_admin.contacts().get(email), timeout_s=20, message="replayed delivery"
    )
    assert (stored["firstName"], stored["lastName"]) == ("Old", "Token")
    assert stored["fieldValues"] == {"6": "2008-01-20"}
    assert dead.count() == 0


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"ACTIVECAMPAIGN_URL": None}, "ACTIVECAMPAIGN_URL"),
        ({"CONTACT_SYNC_RATE_LIMIT": "abc"}, "CONTACT_SYNC_RATE_LIMIT"),
    ],
    ids=["missing-url", "malformed-rate-limit"],
)
def test_worker_refuses_to_start_with_bad_configuration(
    worker_env: dict[str, str], change: dict[str, str | None], variable: str
) -> None:
    """`celery -A worker worker` with a missing or malformed setting exits non-zero with one line naming it."""
    env = dict(worker_env)
    for name, value in change.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    command = [sys.executable, "-m", "celery", "-A", "worker", "worker"]
    command += ["--without-mingle", "--without-gossip", "--concurrency", "1"]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    naming = [line for line in output.splitlines() if variable in line]
    assert len(naming) == 1, output
    assert "configuration error" in naming[0]
    assert "Traceback" not in output
    assert "ready" not in output
