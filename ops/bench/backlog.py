"""Backlog mode's figure (issue 11): N distinct new emails drained through bulk import.

The emulator runs at the documented limits: 5 requests a second for the API, and bulk
import's own 100 multi-contact requests a minute, 250 contacts and 399,999 bytes a request,
answered asynchronously (the emulator processes 1,000 contacts a second by default; the
real speed is undocumented). Two real worker processes drain the backlog while a live
change arrives every 2 seconds; the figure is the time until every contact is exact in the
emulator, against the sync path's physical limit of N / 5 seconds, with the bulk requests,
the 400 rate-limit answers, the polls and the live changes' latency.

    python -m ops.bench.backlog [--emails 10000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from fake_activecampaign import EmulatorClient
from ops.bench.procs import Emulator, PrivateRedis, Worker, stop_workers, wait_for
from ops.bench.stats import Figure, format_table
from producers import ContactSyncProducer

__all__ = ["backlog_figures"]

PREFIX = "bench-backlog"
API_RATE = 5.0
LIVE_EVERY_S = 2.0
TEN_MINUTES_PER_100K_S = 600.0


@dataclass(eq=False)
class LiveTrickle(threading.Thread):
    """Sends a live change every ``every_s`` and times its arrival at the emulator."""

    producer: ContactSyncProducer
    admin: EmulatorClient
    every_s: float = LIVE_EVERY_S
    latencies_s: list[float] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(name="live-trickle", daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            email = f"live{n}@example.com"
            self.producer.contact_changed(email, first_name=f"Live{n}")
            while not self.stopping.is_set() and time.monotonic() - started < 60:
                if self.admin.contact(email):
                    self.latencies_s.append(time.monotonic() - started)
                    break
                time.sleep(0.05)
            n += 1
            self.stopping.wait(max(0.0, self.every_s - (time.monotonic() - started)))


def backlog_figures(
    redis_url: str, token: str, log_dir: Path, *, emails: int, debounce_s: float = 1.0
) -> list[Figure]:
    emulator = Emulator(API_RATE, token, log_dir / "backlog-emulator.log").start()
    speed = os.environ.get("BENCH_BULK_SPEED")
    workers: list[Worker] = []
    client = redis.Redis.from_url(redis_url)
    producer = ContactSyncProducer(redis_url, PREFIX, source="bench")
    try:
        admin = EmulatorClient(emulator.url)
        if speed:
            admin.set_bulk_speed(float(speed))
        env = {
            "ACTIVECAMPAIGN_URL": emulator.url,
            "ACTIVECAMPAIGN_API_TOKEN": token,
            "CONTACT_SYNC_REDIS_URL": redis_url,
            "CONTACT_SYNC_KEY_PREFIX": PREFIX,
            "CONTACT_SYNC_DEBOUNCE_S": f"{debounce_s:g}",
            "CONTACT_SYNC_RATE_LIMIT": f"{API_RATE:g}",
            "CONTACT_SYNC_BULK_LOG_CONTACTS": "false",
            # The limiter's jitter margin (ms); BENCH_RATE_MARGIN_MS overrides the default.
            **(
                {"CONTACT_SYNC_RATE_MARGIN_MS": os.environ["BENCH_RATE_MARGIN_MS"]}
                if os.environ.get("BENCH_RATE_MARGIN_MS")
                else {}
            ),
        }
        for n in range(2):
            workers.append(
                Worker("worker", f"backlog{n}", env, log_dir / f"backlog{n}.log").start()
            )
        for worker in workers:
            worker.wait_ready()
        started = time.monotonic()
        for first in range(0, emails, 10_000):
            producer.send_many(
                {"email": f"b{n}@example.com", "firstName": f"B{n}"}
                for n in range(first, min(emails, first + 10_000))
            )
        enqueued_s = time.monotonic() - started
        trickle = LiveTrickle(producer, admin)
        trickle.start()
        # Cheap checks while it drains (reading 100,000 contacts every second would load the
        # emulator it measures); the exact comparison once, at the end.
        wait_for(
            lambda: _drained(client) and admin.stats()["created"] >= emails,
            timeout_s=max(300.0, emails / 100),
            what=f"{emails:,} contacts created and nothing left to do",
            interval_s=0.5,
        )
        drained_s = time.monotonic() - started
        exact = _exact_count(admin, emails)
        trickle.stopping.set()
        trickle.join(70)
        return _figures(admin, emails, exact, enqueued_s, drained_s, trickle.latencies_s)
    finally:
        stop_workers(workers)
        emulator.stop()
        producer.close()
        _delete(client)
        client.close()


def _exact_count(admin: EmulatorClient, emails: int) -> int:
    contacts = admin.contacts()
    return sum(
        1
        for n in range(emails)
        if (contacts.get(f"b{n}@example.com") or {}).get("firstName") == f"B{n}"
    )


def _drained(client: redis.Redis) -> bool:
    pipe = client.pipeline(transaction=False)
    pipe.xlen(f"{PREFIX}:events")
    for key in ("due", "leases", "bulk:leases", "bulk:batches"):
        pipe.zcard(f"{PREFIX}:{key}")
    return sum(pipe.execute()) == 0


def _delete(client: redis.Redis) -> None:
    for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        client.unlink(key)


def _figures(
    admin: EmulatorClient,
    emails: int,
    exact: int,
    enqueued_s: float,
    drained_s: float,
    live: list[float],
) -> list[Figure]:
    bulk, stats = admin.bulk_stats(), admin.stats()
    routes = stats["by_route"]
    sync_path_s = emails / API_RATE
    target_s = TEN_MINUTES_PER_100K_S * emails / 100_000
    counts: dict[str, Any] = {
        "bulk_requests": routes.get("POST /api/3/import/bulk_import", 0),
        "bulk_rate_limited": bulk["rate_limited"],
        "polls": routes.get("GET /api/3/import/info", 0),
        "contact_syncs": routes.get("POST /api/3/contact/sync", 0),
        "api_429s": stats["rate_limited"],
        "max_api_requests_in_a_second": stats["max_per_second"],
        "contacts_applied": bulk["contacts_applied"],
    }
    live_p50 = statistics.median(live) if live else None
    live_max = max(live) if live else None
    return [
        Figure(
            key="backlog_drain",
            name=f"backlog of {emails:,} new emails, exact, through bulk import",
            measured=(
                f"{exact:,} exact in {drained_s:.0f} s (enqueue {enqueued_s:.1f} s) vs the "
                f"sync path's {sync_path_s / 3600:.1f} h = {sync_path_s / drained_s:.0f}x faster"
            ),
            target=f"under {target_s / 60:.0f} min (10 min per 100,000)",
            passed=exact == emails and drained_s < target_s,
            values={
                "emails": emails,
                "exact": exact,
                "drained_s": drained_s,
                "sync_path_s": sync_path_s,
                **counts,
            },
        ),
        Figure(
            key="backlog_requests",
            name="backlog: bulk requests, 400 rate limits, polls, syncs, 429s",
            measured=", ".join(f"{name} {value:,}" for name, value in counts.items()),
            target="0 bulk rate limits, 0 429s",
            passed=counts["bulk_rate_limited"] == 0 and counts["api_429s"] == 0,
            values=counts,
        ),
        Figure(
            key="backlog_live_latency",
            name="live change during the drain: debounce + latency",
            measured=(
                f"p50 {live_p50:.2f} s, max {live_max:.2f} s over {len(live)} changes"
                if live
                else "no live change measured"
            ),
            target="debounce (1 s) + about a second",
            passed=live_p50 is not None and live_p50 < 2.5,
            values={"p50_s": live_p50, "max_s": live_max, "samples": len(live)},
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="contact-sync-backlog-") as scratch:
        server = PrivateRedis(Path(scratch) / "redis").start()
        try:
            rows = backlog_figures(
                server.url, secrets.token_hex(16), Path(scratch), emails=args.emails
            )
        finally:
            server.stop()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
