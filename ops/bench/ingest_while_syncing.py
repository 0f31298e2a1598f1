"""Ingest while syncs run at a high rate limit: the case where the pump task once starved.

    python -m ops.bench.ingest_while_syncing [--worker-code DIR] [--rate 400]

One worker at ``--concurrency 2``, limiter and emulator at ``--rate``, debounce 0.5 s. First
2,000 new emails, one event each, fall due together, so the pump leases 2 s of budget at
once; 1 s later 20,000 events for 2,000 other new emails are written. Printed: how fast
those were merged (``events_ingested``, polled every 0.1 s), the longest stretch without
progress, and the syncs meanwhile. With the pump as a pool task, its next window queued
behind the syncs it had just enqueued (docs/reliability.md, scenario 8).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import tempfile
import time
from pathlib import Path

from ops.bench.figures import Env
from ops.bench.procs import REPO, Emulator, PrivateRedis, delete_keys
from ops.bench.stats import longest_stall_s
from ops.bench.workload import WorkloadEvent, generate
from producers import ContactSyncProducer
from worker.keys import Keys
from worker.schema import encode_event

__all__ = ["main"]

DUE_TOGETHER, LATER_EVENTS = 2_000, 20_000


def _encoded(events: list[WorkloadEvent], *, tag: str = "user") -> list[str]:
    """The events as wire text, their emails' ``user`` replaced by ``tag``."""
    renamed = (dataclasses.replace(e, email=e.email.replace("user", tag)) for e in events)
    return [encode_event(e.contact(), occurred_at=e.occurred_at)[1] for e in renamed]


def measure(env: Env) -> dict[str, float]:
    client = env.client()
    prefix = "bench-ingest-syncing"
    keys = Keys(prefix)
    # Bulk import would take the 2,000 due emails off the sync path this case is about.
    worker = env.contact_sync_worker("ingest-syncing", prefix, debounce_s=0.5,
                                     settings={"CONTACT_SYNC_BULK_MIN_BACKLOG": "0"})  # fmt: skip
    producer = ContactSyncProducer(env.redis_url, prefix, client=client)
    first = generate(events=DUE_TOGETHER, emails=DUE_TOGETHER, repeat_share=0,
                     late_change_share=0, seed=1).phases[0]  # fmt: skip
    later = generate(events=LATER_EVENTS, emails=LATER_EVENTS // 10, repeat_share=0,
                     late_change_share=0, seed=2).phases[0]  # fmt: skip

    def counts() -> tuple[int, int]:
        ingested, synced = client.hmget(keys.stats, ["events_ingested", "synced_unknown"])
        return int(ingested or 0), int(synced or 0)

    try:
        worker.wait_ready()
        producer.write_encoded(_encoded(first))
        time.sleep(1.0)  # the first emails are due and syncing by now
        ingested_before, synced_before = counts()
        started = time.monotonic()
        producer.write_encoded(_encoded(later, tag="late"))
        samples = [(0.0, 0)]
        while samples[-1][1] < len(later) and samples[-1][0] < 300:
            time.sleep(0.1)
            samples.append((time.monotonic() - started, counts()[0] - ingested_before))
        synced = counts()[1] - synced_before
    finally:
        env.stop_workers([worker])
        delete_keys(client, prefix)
        client.close()
    elapsed, ingested = samples[-1]
    return {"events": ingested, "seconds": round(elapsed, 2),
            "events_per_s": round(ingested / elapsed),
            "longest_stall_s": round(longest_stall_s(samples), 2),
            "syncs_meanwhile": synced}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.ingest_while_syncing")
    parser.add_argument("--worker-code", type=Path, default=REPO)
    parser.add_argument("--rate", type=float, default=400.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="contact-sync-bench-") as scratch:
        server = PrivateRedis(Path(scratch) / "redis").start()
        token = secrets.token_hex(16)
        emulator = Emulator(args.rate, token, Path(scratch) / "emulator.log")
        try:
            emulator.start()
            env = Env(server.url, emulator, token, args.rate, Path(scratch),
                      worker_code=args.worker_code.resolve())  # fmt: skip
            result = measure(env)
        finally:
            emulator.stop()
            server.stop()
    print(json.dumps({"worker_code": str(args.worker_code), "rate": args.rate, **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
