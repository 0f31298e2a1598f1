"""Two destinations against one (issue 12): each ActiveCampaign account has its own budget.

Two emulators, each at the real limit (5 requests a second, 429 above it), are the
destinations ``one`` and ``two`` of a ``CONTACT_SYNC_DESTINATIONS_FILE`` (their tokens in
files of a private temporary directory), and two real worker processes (``celery worker
--concurrency 2``) run with that file. Phase 1 sends N distinct new emails to ``one``
only; phase 2 sends N other new emails, half to ``one`` and half to ``two``, with the same
workers. Each phase's rate is the 2xx ``/contact/sync`` requests after the first over the
time from the first to the last, across both emulators (the sync stage alone, without the
debounce before it). Each destination has its own limiter and its own pump lane, so two
should drain about twice as fast as one, and neither emulator should ever see more than 5
requests in a second nor answer a 429. Bulk import is off (``CONTACT_SYNC_BULK_MIN_BACKLOG=0``):
this figure is about the sync path's budget.

    python -m ops.bench.destinations [--emails 100]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from fake_activecampaign import EmulatorClient
from ops.bench.procs import (
    REPO,
    Emulator,
    PrivateRedis,
    Worker,
    delete_keys,
    stop_workers,
    wait_for,
)
from ops.bench.stats import Figure, format_table, max_in_window, span_rate
from producers import ContactSyncProducer
from worker.keys import Keys

__all__ = ["API_RATE", "MIN_RATIO", "NAMES", "destinations_figures"]

PREFIX = "bench-destinations"
API_RATE = 5.0  # ActiveCampaign's documented limit, per account
NAMES = ("one", "two")
MIN_RATIO = 1.6  # two budgets, less start-up and the limiter's margin, on a shared machine
_SYNC_PATH = "/api/3/contact/sync"


def destinations_figures(
    redis_url: str,
    log_dir: Path,
    *,
    emails: int,
    debounce_s: float = 1.0,
    worker_code: Path = REPO,
) -> list[Figure]:
    """Syncs/s to drain ``emails`` new emails into one destination, then into two."""
    tokens = {name: secrets.token_hex(16) for name in NAMES}
    emulators: dict[str, Emulator] = {}
    admins: dict[str, EmulatorClient] = {}
    workers: list[Worker] = []
    client = redis.Redis.from_url(redis_url)
    producer = ContactSyncProducer(redis_url, PREFIX, source="bench")
    delete_keys(client, PREFIX)
    with tempfile.TemporaryDirectory(prefix="contact-sync-destinations-") as private:
        try:
            for name in NAMES:
                emulators[name] = Emulator(
                    API_RATE, tokens[name], log_dir / f"destinations-emulator-{name}.log"
                ).start()
                admins[name] = EmulatorClient(emulators[name].url)
            path = write_destinations_file(
                Path(private), {name: (emulators[name].url, tokens[name]) for name in NAMES}
            )
            env = {
                "CONTACT_SYNC_DESTINATIONS_FILE": str(path),
                "CONTACT_SYNC_REDIS_URL": redis_url,
                "CONTACT_SYNC_KEY_PREFIX": PREFIX,
                "CONTACT_SYNC_DEBOUNCE_S": f"{debounce_s:g}",
                "CONTACT_SYNC_BULK_MIN_BACKLOG": "0",
            }
            for n in range(2):
                workers.append(
                    Worker(
                        "worker",
                        f"destinations{n}",
                        env,
                        log_dir / f"destinations{n}.log",
                        code_dir=worker_code,
                    ).start()
                )
            for worker in workers:
                worker.wait_ready()
            one = _phase(client, producer, admins, NAMES[:1], emails=emails, tag="one")
            two = _phase(client, producer, admins, NAMES, emails=emails, tag="two")
        finally:
            stop_workers(workers)
            for admin in admins.values():
                admin.close()
            for emulator in emulators.values():
                emulator.stop()
            producer.close()
            delete_keys(client, PREFIX)
            client.close()
    return _figures(emails, one, two)


def write_destinations_file(directory: Path, entries: dict[str, tuple[str, str]]) -> Path:
    """``{name: (url, token)}`` as a destinations file and one token file each, owner-only."""
    document = {}
    for name, (url, token) in entries.items():
        token_file = directory / f"{name}.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        document[name] = {"url": url, "token_file": str(token_file), "rate_limit": API_RATE}
    path = directory / "destinations.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def _phase(
    client: redis.Redis,
    producer: ContactSyncProducer,
    admins: dict[str, EmulatorClient],
    used: tuple[str, ...],
    *,
    emails: int,
    tag: str,
) -> dict[str, Any]:
    """Send ``emails`` new emails spread over the ``used`` destinations; wait for the drain."""
    for admin in admins.values():
        admin.reset()
    contacts = [
        {
            "email": f"{tag}{n}@bench.example.com",
            "firstName": f"N{n}",
            "destination": used[n % len(used)],
        }
        for n in range(emails)
    ]
    load = os.getloadavg()[0]
    written_at = time.time()
    producer.send_many(contacts)

    def done() -> bool:
        synced = sum(_ok(admin.stats()) for admin in admins.values())
        return synced >= emails and _drained(client, used)

    wait_for(done, timeout_s=60 + emails / API_RATE * 3,
             what=f"{emails} emails synced to {'+'.join(used)}", interval_s=0.2)  # fmt: skip
    per_emulator: dict[str, dict[str, Any]] = {}
    arrivals: list[float] = []
    for name, admin in admins.items():
        log, stats = admin.requests_log(), admin.stats()
        if stats["requests_total"] > len(log):
            raise RuntimeError("the emulator's request log was cut; send fewer emails")
        ok = [r["t"] for r in log if r["path"] == _SYNC_PATH and 200 <= r["status"] < 300]
        arrivals += ok
        per_emulator[name] = {
            "requests": stats["requests_total"],
            "syncs_ok": len(ok),
            "syncs_per_s": span_rate(ok) if len(ok) > 1 else None,
            "rate_limited": stats["rate_limited"],
            # Every arrival, 429s included: the emulator's own max_per_second counts only
            # the admitted ones, so it can never exceed its limit.
            "max_in_a_second": max_in_window([r["t"] for r in log]),
            "emulator_max_per_second": stats["max_per_second"],
        }
    return {
        "destinations": list(used),
        "syncs_per_s": span_rate(arrivals),
        "syncs": len(arrivals),
        "first_to_last_s": max(arrivals) - min(arrivals),
        "write_to_last_s": max(arrivals) - written_at,
        "loadavg_1min_at_start": load,
        "emulators": {name: per_emulator[name] for name in used},
    }


def _ok(stats: dict[str, Any]) -> int:
    return sum(n for status, n in stats["by_status"].items() if status.startswith("2"))


def _drained(client: redis.Redis, used: tuple[str, ...]) -> bool:
    pipe = client.pipeline(transaction=False)
    pipe.xlen(Keys(PREFIX).events)
    for name in used:
        keys = Keys(PREFIX, name)
        pipe.zcard(keys.due)
        pipe.zcard(keys.leases)
    return sum(int(n) for n in pipe.execute()) == 0


def _figures(emails: int, one: dict[str, Any], two: dict[str, Any]) -> list[Figure]:
    ratio = two["syncs_per_s"] / one["syncs_per_s"]
    emulators = {f"1 destination, {name}": v for name, v in one["emulators"].items()}
    emulators |= {f"2 destinations, {name}": v for name, v in two["emulators"].items()}
    limited = sum(v["rate_limited"] for v in emulators.values())
    busiest = max(v["max_in_a_second"] for v in emulators.values())
    return [
        Figure(
            key="destinations_throughput",
            name=f"sync throughput, 2 destinations vs 1, each an emulator at "
            f"{API_RATE:g}/s ({emails:,} new emails, 2 workers --concurrency 2)",
            measured=f"{two['syncs_per_s']:.2f} vs {one['syncs_per_s']:.2f} syncs/s = {ratio:.2f}x",
            target=f">= {MIN_RATIO:g}x",
            passed=ratio >= MIN_RATIO,
            values={
                "ratio": ratio,
                "emails": emails,
                "api_rate_per_s": API_RATE,
                "one_destination": one,
                "two_destinations": two,
            },
        ),
        Figure(
            key="destinations_limits",
            name="429s / most requests in any second, per emulator",
            measured=f"{limited} / {busiest} (1 destination: {_limits(one)}; "
            f"2 destinations: {_limits(two)})",
            target=f"0 / <= {API_RATE:g}",
            passed=limited == 0 and busiest <= API_RATE,
            values={"rate_limited": limited, "max_in_a_second": busiest, "by_emulator": emulators},
        ),
    ]


def _limits(phase: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {v['rate_limited']} / {v['max_in_a_second']}"
        for name, v in phase["emulators"].items()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=100, help="new emails per phase")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="contact-sync-destinations-run-") as scratch:
        server = PrivateRedis(Path(scratch) / "redis").start()
        try:
            rows = destinations_figures(server.url, Path(scratch), emails=args.emails)
        finally:
            server.stop()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
