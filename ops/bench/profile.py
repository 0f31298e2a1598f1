"""pyinstrument over the hot paths, in this process: producer, pump ingest, sync.

    python -m ops.bench.profile [producer|ingest|sync ...] [--events N] [--html DIR]

Starts its own redis-server (and, for ``sync``, an in-process emulator without a rate
limit), runs each path on generated traffic and prints pyinstrument's text report. The
profile shows where a path spends its time; the figures themselves come from ``make bench``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fake_activecampaign import FakeActiveCampaign
from ops.bench.procs import PrivateRedis
from ops.bench.workload import generate
from producers import ContactSyncProducer
from worker.client import ActiveCampaignClient
from worker.keys import Keys
from worker.pump import PumpReport, decode_entry
from worker.ratelimit import RateLimiter
from worker.schema import encode_event
from worker.settings import Secret, Settings
from worker.store import InvalidEntry, MergeStore
from worker.sync import sync_contact

__all__ = ["main"]

PATHS = ("producer", "ingest", "sync")


def profile_producer(redis_url: str, events: int) -> tuple[Any, str]:
    producer = ContactSyncProducer(redis_url, "profile-producer")
    contacts = [e.contact() for e in generate(events=events, emails=events // 10).phases[0]]
    started = time.perf_counter()
    for contact in contacts:
        producer.contact_changed(
            contact["email"],
            first_name=contact.get("firstName"),
            last_name=contact.get("lastName"),
            phone=contact.get("phone"),
            fields={v["field"]: v["value"] for v in contact.get("fieldValues", ())},
        )
    elapsed = time.perf_counter() - started
    producer.close()
    return None, f"contact_changed: {elapsed / len(contacts) * 1e6:.0f} µs per call"


def _ingested_store(redis_url: str, prefix: str, events: int) -> tuple[MergeStore, Any, float]:
    import redis

    client = redis.Redis.from_url(redis_url)
    store = MergeStore(client, Keys(prefix))
    store.ensure_group()
    workload = generate(events=events, emails=max(1, events // 7))
    texts = [encode_event(e.contact(), occurred_at=e.occurred_at)[1] for e in workload.phases[0]]
    ContactSyncProducer(redis_url, prefix, client=client).write_encoded(texts)
    report = PumpReport()
    started = time.perf_counter()
    while entries := store.read_events("profile", count=500, block_ms=None):
        valid, invalid = [], []
        for entry_id, fields in entries:
            decoded = decode_entry(entry_id, fields)
            if isinstance(decoded, InvalidEntry):
                invalid.append(decoded)
            else:
                valid.append((entry_id, decoded))
        result = store.ingest(valid, invalid, debounce_s=0)
        report.merged += result.merged
    return store, client, (time.perf_counter() - started) / len(texts)


def profile_ingest(redis_url: str, events: int) -> tuple[Any, str]:
    _, client, per_event_s = _ingested_store(redis_url, "profile-ingest", events)
    client.close()
    return None, f"ingest: {per_event_s * 1e6:.0f} µs per event ({1 / per_event_s:,.0f}/s)"


def profile_sync(redis_url: str, events: int) -> tuple[Any, str]:
    store, client, _ = _ingested_store(redis_url, "profile-sync", events)
    token = "profile-token"  # noqa: S105 - the emulator's throwaway token
    with FakeActiveCampaign(port=0, api_token=token, rate_limit=0) as emulator:
        settings = Settings(
            activecampaign_url=emulator.url,
            api_token=Secret(token),
            redis_url=redis_url,
            key_prefix="profile-sync",
            rate_limit=10_000,
        )
        api = ActiveCampaignClient(emulator.url, Secret(token))
        limiter = RateLimiter(client, store.keys, rate_per_s=settings.rate_limit)
        rng = random.Random(1)
        done = 0
        started = time.perf_counter()
        while True:
            claims = store.claim_due(max_leases=1000, lease_s=settings.timings.lease_s).claims
            if not claims:
                break
            for claim in claims:
                sync_contact(claim.email, claim.lease, store=store, client=api, limiter=limiter,
                             settings=settings, rng=rng)  # fmt: skip
                done += 1
        elapsed = time.perf_counter() - started
    client.close()
    return None, f"sync: {elapsed / done * 1e3:.2f} ms per email (emulator in this process)"


def main(argv: list[str] | None = None) -> int:
    from pyinstrument import Profiler

    parser = argparse.ArgumentParser(prog="python -m ops.bench.profile")
    parser.add_argument("paths", nargs="*", default=list(PATHS), choices=PATHS)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--html", type=Path, help="also write pyinstrument HTML here")
    args = parser.parse_args(argv)
    runners = {"producer": profile_producer, "ingest": profile_ingest, "sync": profile_sync}
    with tempfile.TemporaryDirectory(prefix="contact-sync-profile-") as scratch:
        server = PrivateRedis(Path(scratch)).start()
        try:
            for path in args.paths:
                profiler = Profiler(interval=0.0005)
                profiler.start()
                _, summary = runners[path](server.url, args.events)
                profiler.stop()
                print(f"=== {path}: {summary}")
                print(profiler.output_text(unicode=True, color=False, show_all=False))
                if args.html:
                    args.html.mkdir(parents=True, exist_ok=True)
                    (args.html / f"{path}.html").write_text(profiler.output_html())
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
