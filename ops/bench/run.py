"""``make bench`` / ``make bench-quick``: measure every figure of docs/performance.md in one run.

Starts a private redis-server and the emulator (both on free loopback ports), runs each
figure against contact-sync's real worker processes and against the naive baseline
(``ops/bench/naive_app.py``) in the same run, prints the table, writes
``bench-results.json`` and draws ``docs/perf/bench-{full,quick}.png``.

    python -m ops.bench [--quick] [--rate 100] [--naive-cap-s 300] [--only GROUPS]
                        [--worker-code DIR] [--strict]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.bench import chart, figures
from ops.bench.backlog import backlog_figures
from ops.bench.destinations import destinations_figures
from ops.bench.footprint import footprint_figure, footprint_workers_figure
from ops.bench.procs import REPO, Emulator, PrivateRedis
from ops.bench.replicas import run_replicas
from ops.bench.stats import Figure, format_table
from ops.bench.workload import generate

__all__ = ["GROUPS", "QUICK", "Scale", "main"]

GROUPS = ("producer", "replicas", "memory", "ingest", "workload", "footprint", "throughput",
          "destinations", "backlog")  # fmt: skip


@dataclass(frozen=True)
class Scale:
    """How much of everything a run does."""

    rate: float  # emulator and limiter, requests/s
    producer_calls: int
    send_many_batch: int
    naive_publish_calls: int
    memory_contacts: int
    ingest_events: int
    naive_ingest_events: int
    workload_events: int
    workload_emails: int
    debounce_s: float
    idle_samples: int
    naive_cap_s: float
    footprint_contacts: int
    throughput_events: int  # for a tenth as many new emails, at figures.FAST_API_RATE
    backlog_emails: int  # new emails drained through bulk import at the real limits
    replica_calls: int  # contact_changed calls per MIN_REPLICAS setting
    destinations_emails: int  # new emails per phase, 1 then 2 destinations at the real 5/s


# 50 requests/s, not the real 5: drains finish in minutes, and the budget ratios stay
# meaningful. Above about 70 syncs/s a shared 2-core machine runs out of CPU before the
# limiter binds (docs/performance.md), and the budget figures would measure the CPU instead.
FULL = Scale(rate=50, producer_calls=20_000, send_many_batch=50_000, naive_publish_calls=5_000,
             memory_contacts=5_000, ingest_events=50_000, naive_ingest_events=6_000,
             workload_events=50_000, workload_emails=5_000, debounce_s=10, idle_samples=60,
             naive_cap_s=300, footprint_contacts=200, throughput_events=10_000,
             backlog_emails=100_000, replica_calls=5_000,
             destinations_emails=400)  # fmt: skip
# Under 2 minutes on a 2-core machine: fewer events, and the naive run cut short.
QUICK = Scale(rate=50, producer_calls=3_000, send_many_batch=10_000, naive_publish_calls=1_000,
              memory_contacts=1_000, ingest_events=10_000, naive_ingest_events=1_500,
              workload_events=5_000, workload_emails=500, debounce_s=2, idle_samples=15,
              naive_cap_s=15, footprint_contacts=50, throughput_events=4_000,
              backlog_emails=10_000, replica_calls=2_000,
              destinations_emails=100)  # fmt: skip


def machine(redis_version: str) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "redis": redis_version,
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, under 2 minutes")
    parser.add_argument("--rate", type=float, help="emulator and limiter rate (requests/s)")
    parser.add_argument("--naive-cap-s", type=float, help="stop the naive workload run after this")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    parser.add_argument("--chart", type=Path, help="PNG path (default docs/perf/bench-MODE.png)")
    parser.add_argument("--log-dir", type=Path, help="keep worker and emulator logs here")
    parser.add_argument("--only", type=_groups, help=f"comma-separated: {','.join(GROUPS)}")
    parser.add_argument(
        "--worker-code", type=Path, default=REPO, help="run contact-sync workers from this checkout"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def _groups(text: str) -> set[str]:
    chosen = set(text.split(","))
    unknown = sorted(chosen - set(GROUPS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown group(s) {unknown}; choose from {GROUPS}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scale = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("rate", args.rate), ("naive_cap_s", args.naive_cap_s)) if v}
    scale = Scale(**{**scale.__dict__, **overrides})
    mode = "quick" if args.quick else "full"
    groups = args.only or set(GROUPS)
    chart_path = args.chart or REPO / "docs" / "perf" / f"bench-{mode}.png"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="contact-sync-bench-") as scratch:
        log_dir = args.log_dir or Path(scratch)
        log_dir.mkdir(parents=True, exist_ok=True)
        server = PrivateRedis(Path(scratch) / "redis").start()
        token = secrets.token_hex(16)
        emulator = Emulator(scale.rate, token, log_dir / "emulator.log")
        env = figures.Env(server.url, emulator, token, scale.rate, log_dir,
                          worker_code=args.worker_code.resolve())  # fmt: skip
        try:
            emulator.start()
            info = machine(server.version())
            print(f"contact-sync bench ({mode}): {info['nproc']} cores, {info['cpu']}, "
                  f"Python {info['python']}, Redis {info['redis']}; rate {scale.rate:g}/s; "
                  f"redis {server.url}, emulator {emulator.url}", flush=True)  # fmt: skip
            rows, raw = run_figures(env, scale, groups)
        finally:
            env.stop_workers()
            emulator.stop()
            server.stop()
    elapsed = time.monotonic() - started
    print()
    print(format_table(rows))
    met = [row for row in rows if row.passed is not None]
    print(f"\n{sum(bool(r.passed) for r in met)} of {len(met)} targets met; {elapsed:.0f} s")
    result = {
        "mode": mode,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "command": "python -m ops.bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": info,
        "worker_code": str(args.worker_code.resolve()),
        "scale": scale.__dict__,
        "figures": {row.key: row.as_json() for row in rows},
        "table_markdown": format_table(rows, markdown=True),
        "raw": raw,
    }
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    if "cs" in raw and "naive" in raw:
        chart.draw(chart_path, cs=raw["cs"], naive=raw["naive"], rate=scale.rate,
                   title=chart.chart_title(mode, scale.__dict__))  # fmt: skip
        print(f"wrote {chart_path}")
    return 1 if args.strict and any(r.passed is False for r in met) else 0


def run_figures(
    env: figures.Env, scale: Scale, groups: set[str]
) -> tuple[list[Figure], dict[str, Any]]:
    rows: list[Figure] = []
    raw: dict[str, Any] = {}

    def step(what: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {what}", flush=True)

    if "producer" in groups:
        step("producer: contact_changed latency, send_many throughput")
        found, _ = figures.producer_figures(env, calls=scale.producer_calls,
                                            batch=scale.send_many_batch)  # fmt: skip
        rows += found
        rows.append(figures.naive_publish_figure(env, calls=scale.naive_publish_calls))
    if "replicas" in groups:
        step(f"producer with CONTACT_SYNC_PRODUCER_MIN_REPLICAS 0 and 1: a master and a "
             f"replica of its own, {scale.replica_calls:,} calls each")  # fmt: skip
        found = run_replicas(calls=scale.replica_calls)
        if found[0].values.get("skipped"):
            step(f"replicas {found[0].measured}")
        rows += found
    if "memory" in groups:
        step("memory per pending and per confirmed contact")
        rows += figures.memory_figures(env, contacts=scale.memory_contacts)
    if "ingest" in groups:
        step("ingest throughput, contact-sync vs naive, 2 worker processes each")
        rows += figures.ingest_figures(env, events=scale.ingest_events,
                                       naive_events=scale.naive_ingest_events)  # fmt: skip
    if "workload" in groups:
        workload = generate(events=scale.workload_events, emails=scale.workload_emails)
        step(f"workload through contact-sync: {workload.events:,} events, needs "
             f"{sum(workload.needed):,} requests {workload.needed}")  # fmt: skip
        found, raw["cs"] = figures.contact_sync_workload(
            env, workload, debounce_s=scale.debounce_s, idle_samples=scale.idle_samples
        )
        rows += found
        step(f"the same workload through the naive tasks (cap {scale.naive_cap_s:g} s)")
        found, raw["naive"] = figures.naive_workload(env, workload, cap_s=scale.naive_cap_s)
        rows += found
    if "footprint" in groups:
        step(f"requests per change with tags, a list and a field by perstag: "
             f"{scale.footprint_contacts} changes, ours and RudderStack's pattern")  # fmt: skip
        rows.append(footprint_figure(env, contacts=scale.footprint_contacts))
        step(f"429s with 4 worker processes on footprint traffic: {scale.footprint_contacts} "
             f"contacts, each changed twice")  # fmt: skip
        rows.append(footprint_workers_figure(env, contacts=scale.footprint_contacts))
    if "throughput" in groups:
        events = scale.throughput_events
        step(f"sync throughput at a {figures.FAST_API_RATE:g}/s API: {events:,} events, "
             f"{events // 10:,} new emails, one worker -c 2, contact-sync vs naive")  # fmt: skip
        rows.append(figures.throughput_figure(env, events=events))
    if "destinations" in groups:
        emails = scale.destinations_emails
        step(f"2 destinations against 1, each an emulator at the real 5/s: {emails:,} new "
             f"emails to one destination, then {emails:,} split over two")  # fmt: skip
        rows += destinations_figures(env.redis_url, env.log_dir, emails=emails,
                                     worker_code=env.worker_code)  # fmt: skip
    if "backlog" in groups:
        step(f"backlog of {scale.backlog_emails:,} new emails through bulk import, the emulator "
             f"at the real limits (5/s, bulk 100/minute), a live change every 2 s")  # fmt: skip
        rows += backlog_figures(env.redis_url, env.token, env.log_dir, emails=scale.backlog_emails)
    return rows, raw


if __name__ == "__main__":
    sys.exit(main())
