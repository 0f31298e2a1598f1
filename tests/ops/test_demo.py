"""``ops/demo.py`` end to end: real worker, emulator and Redis, shrunk to run in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

DEMO = Path(__file__).resolve().parents[2] / "ops" / "demo.py"
SUMMARY_LABELS = (
    "events sent (valid)",
    "invalid events (dead-lettered)",
    "rejected at the producer",
    "distinct emails",
    "API requests made",
    "contact/sync",
    "contactTags",
    "contactLists",
    "accountContacts",
    "requests per event",
    "contacts created / updated",
    "syncs skipped as unchanged",
    "retries",
    "429s received",
    "max requests in any second",
    "tags on contacts",
    "list memberships",
    "contacts linked to a company",
    "dead letters",
    "elapsed",
)


@pytest.mark.integration
def test_demo_syncs_every_contact_exactly_and_leaves_no_keys(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The demo exits 0, prints its summary with requests by kind and the tags, lists and companies held, verifies all 60 contacts exact in fields, tags, lists and account, and deletes every key it wrote."""
    keys_before = set(redis_client.keys("*"))
    env = {
        **os.environ,
        "CONTACT_SYNC_REDIS_URL": redis_url,
        "DEMO_RATE": "100",
        "DEMO_EMAILS": "60",
        "DEMO_EVENTS": "400",
        "DEMO_SEED": "7",
        "DEMO_LOG_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=240
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for label in SUMMARY_LABELS:
        assert f"  {label} " in result.stdout, f"missing {label!r}:\n{output}"
    assert (
        "verified: 60/60 contacts exact in names, phones, fields, tags, lists and accounts"
        in result.stdout
    ), output
    assert "verified: 3/3 references the account lacks dead-lettered" in result.stdout, output
    assert "FAILED" not in result.stdout, output
    assert (tmp_path / "worker.log").stat().st_size > 0
    assert redis_client.keys("contact-sync-demo-*") == []
    assert set(redis_client.keys("*")) == keys_before  # nothing outside the prefix either
