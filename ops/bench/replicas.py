"""What ``CONTACT_SYNC_PRODUCER_MIN_REPLICAS`` costs a producer (issue 12).

A master and one replica of it, both private redis-server processes on loopback. The same
``contact_changed`` calls are timed with ``MIN_REPLICAS`` 0 (one ``XADD``) and 1 (``XADD``
and ``WAIT 1 1000`` in one round trip), in alternating rounds so that drift hits both
alike, and ``send_many`` of 10,000 contacts (one ``WAIT`` per chunk of 1,000) for scale.
On loopback the replica answers within the same machine; in production add the network
round trip between master and replica to every ``WAIT``.

    python -m ops.bench.replicas [--calls 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from ops.bench.procs import delete_keys, free_port, wait_for
from ops.bench.stats import Figure, format_table, percentile
from producers import ContactSyncProducer

__all__ = ["SKIPPED", "replica_figures", "run_replicas", "skipped_figure"]

PREFIX = "bench-replicas"
ROUNDS = 5
WARM_UP = 300
BATCH = 10_000
SKIPPED = "skipped: redis-server is not installed (apt-get install redis-server)"


@dataclass
class _Server:
    """A redis-server on loopback, optionally a replica of ``replica_of`` (a port)."""

    workdir: Path
    replica_of: int | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> _Server:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            "--repl-diskless-sync-delay",
            "0",
        ]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(self._ready, timeout_s=15, what=f"redis-server on {self.port}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited; see {self.workdir / 'redis.log'}")
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            if self.replica_of is None:
                return bool(client.ping())
            return client.info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _contact(n: int) -> dict[str, Any]:
    # The shape of ops/bench/figures.py's producer figure: three attributes and two fields.
    return {
        "email": f"user{n % 1000}@example.com",
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
        "phone": f"555{n:07d}",
        "fields": {"1": f"value-{n}", "2": f"other-{n}"},
    }


def _time_calls(producer: ContactSyncProducer, calls: int, offset: int) -> list[float]:
    latencies = []
    for n in range(offset, offset + calls):
        contact = _contact(n)
        started = time.perf_counter()
        producer.contact_changed(**contact)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def replica_figures(master_url: str, *, calls: int = 5000) -> list[Figure]:
    """contact_changed p50/p99 and send_many rate with MIN_REPLICAS 0 and 1.

    ``master_url`` must have at least one replica connected; ``calls`` per setting.
    """
    client = redis.Redis.from_url(master_url)
    producers = {m: ContactSyncProducer(master_url, PREFIX, min_replicas=m) for m in (0, 1)}
    latencies: dict[int, list[float]] = {0: [], 1: []}
    rates: dict[int, float] = {}
    try:
        for producer in producers.values():
            _time_calls(producer, WARM_UP, 0)
        per_round = max(1, calls // ROUNDS)
        for round_ in range(ROUNDS):
            for m, producer in producers.items():
                latencies[m] += _time_calls(producer, per_round, round_ * per_round)
            delete_keys(client, PREFIX)
        contacts = [{"email": f"user{n}@example.com", "firstName": "A"} for n in range(BATCH)]
        for m, producer in producers.items():
            best = 0.0
            for _ in range(3):
                started = time.perf_counter()
                producer.send_many(contacts)
                best = max(best, BATCH / (time.perf_counter() - started))
                delete_keys(client, PREFIX)
            rates[m] = best
    finally:
        for producer in producers.values():
            producer.close()
        delete_keys(client, PREFIX)
        client.close()
    figures = []
    for m in (0, 1):
        p50, p99 = percentile(latencies[m], 50), percentile(latencies[m], 99)
        figures.append(
            Figure(
                f"producer_latency_min_replicas_{m}",
                f"contact_changed p50 / p99, MIN_REPLICAS={m}",
                f"{p50:.3f} / {p99:.3f} ms",
                "(measured)",
                None,
                {"p50_ms": p50, "p99_ms": p99, "calls": len(latencies[m])},
            )
        )
    for m in (0, 1):
        figures.append(
            Figure(
                f"send_many_rate_min_replicas_{m}",
                f"send_many of {BATCH:,}, MIN_REPLICAS={m}",
                f"{rates[m]:,.0f} events/s",
                "(measured)",
                None,
                {"events_per_s": rates[m]},
            )
        )
    extra = percentile(latencies[1], 50) - percentile(latencies[0], 50)
    figures.append(
        Figure(
            "wait_cost",
            "WAIT 1 adds, p50",
            f"{extra * 1000:.0f} µs",
            "(measured)",
            None,
            {"p50_extra_ms": extra},
        )
    )
    return figures


def run_replicas(*, calls: int = 5000) -> list[Figure]:
    """Start a master and its replica, measure, stop both: ``make bench``'s ``replicas`` group.

    Without a ``redis-server`` binary, one informational row that says so instead.
    """
    if shutil.which("redis-server") is None:
        return [skipped_figure()]
    with tempfile.TemporaryDirectory(prefix="contact-sync-replicas-") as scratch:
        master = _Server(Path(scratch) / "master").start()
        replica = _Server(Path(scratch) / "replica", replica_of=master.port)
        try:
            replica.start()
            return replica_figures(master.url, calls=calls)
        finally:
            replica.stop()
            master.stop()


def skipped_figure() -> Figure:
    return Figure(
        "replicas_skipped",
        "producer cost of CONTACT_SYNC_PRODUCER_MIN_REPLICAS",
        SKIPPED,
        "(skipped)",
        None,
        {"skipped": SKIPPED},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per setting")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rows = run_replicas(calls=args.calls)
    if args.json:
        print(json.dumps({f.key: f.as_json() for f in rows}, indent=2))
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
