"""``make demo``: the whole pipeline on this machine, against a fake ActiveCampaign.

Starts (or borrows) Redis, the HTTP emulator and one real Celery worker; sends two waves of
realistic traffic and some bad input from three threads: names, phones, fields by id,
%PERSTAG% and title, tags added and removed, lists by name and id, company moves; waits
until everything is synced; prints what it cost in API requests by kind and what
ActiveCampaign holds, and checks every contact's fields, tags, lists and account against
last write wins. On a shared Redis it touches only keys under its own prefix, and deletes
them at the end.

Environment: DEMO_RATE (requests/s, default 50; the real account limit is 5), DEMO_EMAILS
(300), DEMO_EVENTS (2000), DEMO_SEED (random), DEMO_TIMEOUT_S (300, per wave), DEMO_LOG_DIR
(.demo), CONTACT_SYNC_REDIS_URL (else 127.0.0.1:6379 if it answers, else a private server).
Exit status: 0 when every contact is exact, 1 otherwise, 130 on Ctrl+C.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from demo_footprint import UNRESOLVABLE, References, describe
from demo_processes import (
    REPO,
    DemoError,
    answers_ping,
    delete_keys,
    start_emulator,
    start_private_redis,
    start_worker,
    stop_process,
    wait_until_ready,
)
from demo_report import Results, print_summary, requests_by_email, verify
from demo_traffic import (
    SENDER_THREADS,
    TrafficPlan,
    rejected_by_producer,
    send_concurrently,
    write_invalid_raw,
)

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.redis_client import connect
from worker.status import read_status

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
REAL_RATE_LIMIT = 5
_OUR_VARIABLES = ("CONTACT_SYNC_", "ACTIVECAMPAIGN_", "CELERY_")


@dataclass(frozen=True)
class Config:
    rate: float
    emails: int
    events: int
    seed: int
    timeout_s: float
    log_dir: Path

    @classmethod
    def from_env(cls) -> Config:
        # An ops script, not the worker: reading its own knobs here is fine.
        env = os.environ
        return cls(
            # Tags, lists and companies take the default traffic from about 410 requests to
            # about 1,000: at 50/s it takes as long as the plain traffic did at 20/s, ~25 s.
            rate=float(env.get("DEMO_RATE", "50")),
            emails=int(env.get("DEMO_EMAILS", "300")),
            events=int(env.get("DEMO_EVENTS", "2000")),
            seed=int(env.get("DEMO_SEED") or secrets.randbelow(1_000_000)),
            timeout_s=float(env.get("DEMO_TIMEOUT_S", "300")),
            log_dir=Path(env.get("DEMO_LOG_DIR") or REPO / ".demo"),
        )

    @property
    def first_wave_events(self) -> int:
        return max(self.emails, round(self.events * 0.75))


# -- processes ------------------------------------------------------------------------------


def worker_environment(
    redis_url: str, prefix: str, api_url: str, token: str, config: Config
) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_OUR_VARIABLES)}
    env.update(
        PYTHONUNBUFFERED="1",
        ACTIVECAMPAIGN_URL=api_url,
        ACTIVECAMPAIGN_API_TOKEN=token,
        CONTACT_SYNC_REDIS_URL=redis_url,
        CONTACT_SYNC_KEY_PREFIX=prefix,
        CONTACT_SYNC_DEBOUNCE_S="1",
        CONTACT_SYNC_RATE_LIMIT=f"{config.rate:g}",
    )
    return env


# -- watching the pipeline ------------------------------------------------------------------


@dataclass
class Pipeline:
    """What the demo watches: Redis under its prefix, the emulator, the worker process."""

    client: redis.Redis
    keys: Keys
    admin: EmulatorClient
    worker: subprocess.Popen[bytes]
    worker_log: Path

    def drained(self) -> bool:
        """Stream, schedule and leases all empty, read atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xlen(self.keys.events)
        pipe.zcard(self.keys.due)
        pipe.zcard(self.keys.leases)
        return sum(int(count) for count in pipe.execute()) == 0

    def counters(self) -> dict[str, int]:
        return read_status(self.client, self.keys).counters

    def wait_drained(self, phase: str, *, contacts: int, timeout_s: float, started: float) -> None:
        """Show progress until nothing is left to do and the emulator holds ``contacts``."""
        progress = Progress()
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.progress_line(phase, started)
            if self.worker.poll() is not None:
                progress.finish(line)
                raise DemoError(
                    f"the worker exited ({self.worker.returncode}); see {self.worker_log}"
                )
            if self.drained() and self.admin.stats()["created"] >= contacts:
                progress.finish(line)
                return
            if time.monotonic() > deadline:
                progress.finish(line)
                raise DemoError(self.stuck(phase, contacts, timeout_s))
            progress.show(line)
            time.sleep(0.25)

    def progress_line(self, phase: str, started: float) -> str:
        status = read_status(self.client, self.keys)
        counters = status.counters
        synced = sum(counters.get(name, 0) for name in ("synced_unknown", "synced_updated"))
        return (
            f"  [{phase}] stream backlog {status.stream_backlog:>5,}"
            f" | pending {status.pending_contacts:>4} | in flight {status.in_flight:>3}"
            f" | synced {synced:>5,}"
            f" | {time.monotonic() - started:6.1f} s"
        )

    def stuck(self, phase: str, contacts: int, timeout_s: float) -> str:
        status = read_status(self.client, self.keys)
        return (
            f"{phase} did not drain within {timeout_s:g} s. Stuck: stream backlog "
            f"{status.stream_backlog} ({status.stream_unacked} read, unacked), "
            f"{status.pending_contacts} emails scheduled ({status.due_now} due now), "
            f"{status.in_flight} leased, {len(self.admin.contacts())}/{contacts} contacts in the "
            f"emulator, pump running: {status.pump_running}, limiter paused "
            f"{status.limiter_paused_for_s:.1f} s. Worker log: {self.worker_log}"
        )


class Progress:
    """One status line: rewritten in place on a terminal, printed every 2 s otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.printed_at = -1e9

    def show(self, line: str) -> None:
        if self.tty:
            sys.stdout.write(f"\r{line}\x1b[K")
            sys.stdout.flush()
        elif time.monotonic() - self.printed_at >= 2:
            print(line, flush=True)
            self.printed_at = time.monotonic()

    def finish(self, line: str) -> None:
        print(f"\r{line}\x1b[K" if self.tty else line, flush=True)


# -- the run --------------------------------------------------------------------------------


def run(config: Config, cleanup: ExitStack) -> int:
    prefix = f"contact-sync-demo-{secrets.token_hex(4)}"
    token = secrets.token_hex(16)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    redis_url = obtain_redis(cleanup, prefix)
    client = connect(redis_url)  # a sentinel:// URL works too
    cleanup.callback(client.close)
    cleanup.callback(report_deleted_keys, client, prefix)

    emulator, api_url = start_emulator(config.rate, token, config.log_dir / "emulator.log")
    cleanup.callback(stop_and_report, emulator, "the emulator")
    print(f"  emulator  {api_url} (fake ActiveCampaign, {config.rate:g} requests/s)")

    log_path = config.log_dir / "worker.log"
    with log_path.open("wb") as log:
        worker = start_worker(worker_environment(redis_url, prefix, api_url, token, config), log)
    cleanup.callback(stop_and_report, worker, f"the worker (its JSON log: {_shown(log_path)})")
    wait_until_ready(worker, log_path)
    print(f"  worker    celery -A worker worker --concurrency 2 (pid {worker.pid}), ready")
    print(f"  rate      {config.rate:g} requests/s; the real account limit is {REAL_RATE_LIMIT}/s")
    if config.rate != REAL_RATE_LIMIT:
        print(f"            (faster to keep the demo short: `DEMO_RATE={REAL_RATE_LIMIT} make demo`"
              " runs at the real pace)")  # fmt: skip

    admin = cleanup.enter_context(EmulatorClient(api_url))
    producer = ContactSyncProducer(redis_url, prefix, source="demo")
    cleanup.callback(producer.close)
    pipeline = Pipeline(client, Keys(prefix), admin, worker, log_path)
    results = send_and_wait(config, pipeline, producer)
    letters = DeadLetters(client, pipeline.keys)
    print_summary(
        results, admin=admin, counters=pipeline.counters(), letters=letters, rate=config.rate
    )
    return 0 if verify(results, admin=admin, letters=letters) else 1


def obtain_redis(cleanup: ExitStack, prefix: str) -> str:
    """CONTACT_SYNC_REDIS_URL, else a local Redis that answers, else a private redis-server."""
    url = os.environ.get("CONTACT_SYNC_REDIS_URL") or (
        LOCAL_REDIS_URL if answers_ping(LOCAL_REDIS_URL) else ""
    )
    if url:
        if not answers_ping(url):
            raise DemoError(f"Redis at {_redacted(url)} does not answer PING")
        print(f"  redis     {_redacted(url)}, shared: the demo touches only {prefix}:*")
        return url
    if shutil.which("redis-server") is None:
        raise DemoError(
            "no Redis answers on 127.0.0.1:6379 and redis-server is not installed: "
            "run `sudo apt-get install redis-server` (or set CONTACT_SYNC_REDIS_URL)"
        )
    workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="contact-sync-demo-")))
    server, url = start_private_redis(workdir)
    cleanup.callback(stop_and_report, server, "private redis-server")
    print(f"  redis     {url}, a private redis-server (no persistence) for this demo")
    return url


def send_and_wait(config: Config, pipeline: Pipeline, producer: ContactSyncProducer) -> Results:
    """Both waves, each followed by waiting until the pipeline has drained."""
    references = References.from_emulator(pipeline.admin)
    plan, results = TrafficPlan(config.seed, config.emails, references), Results()
    started = time.monotonic()
    send_first_wave(plan, config, pipeline, producer, results)
    pipeline.wait_drained(
        "wave 1", contacts=config.emails, timeout_s=config.timeout_s, started=started
    )
    results.requests_before_second_wave = requests_by_email(pipeline.admin)
    send_second_wave(plan, config, producer, results)
    pipeline.wait_drained(
        "wave 2", contacts=config.emails, timeout_s=config.timeout_s, started=started
    )
    results.elapsed_s = time.monotonic() - started
    return results


def send_first_wave(
    plan: TrafficPlan,
    config: Config,
    pipeline: Pipeline,
    producer: ContactSyncProducer,
    results: Results,
) -> None:
    first = plan.first_wave(config.first_wave_events, dt.datetime.now(dt.UTC))
    send_concurrently(producer, first)
    results.valid += first
    results.invalid_raw = write_invalid_raw(pipeline.client, pipeline.keys)
    results.rejected = rejected_by_producer(producer)
    print(
        f"\nwave 1: {len(first):,} changes to {config.emails} contacts from {SENDER_THREADS} "
        "threads, out of occurred_at order, many per contact within the 1 s debounce"
    )
    for line in describe(first):
        print(f"  {line}")
    print(f"  {len(UNRESOLVABLE)} references the account lacks, to be dead-lettered: "
          + ", ".join(label for _, label, _ in UNRESOLVABLE))  # fmt: skip
    print(f"  {len(results.invalid_raw)} invalid events written raw with XADD: "
          + ", ".join(results.invalid_raw))  # fmt: skip
    print(f"  the producer rejected {len(results.rejected)} bad contacts with InvalidContactEvent:")
    for label, message in results.rejected:
        print(f"    {label:<18} {textwrap.shorten(message, 72)}")


def send_second_wave(
    plan: TrafficPlan, config: Config, producer: ContactSyncProducer, results: Results
) -> None:
    first = list(results.valid)
    now = dt.datetime.now(dt.UTC)
    second, results.noop_emails = plan.second_wave(config.events - len(first), now, first)
    oldest = min(change.occurred_at for change in first)
    results.late_events = sum(change.occurred_at < oldest for change in second)
    repeats = sum(change.identity in results.noop_emails for change in second)
    send_concurrently(producer, second)
    results.valid += second
    print(
        f"\nwave 2: {len(second):,} changes: {repeats} no-op repeats of sent values "
        f"({len(results.noop_emails)} contacts), {results.late_events} late events older than "
        f"anything sent, {len(second) - repeats - results.late_events} updates"
    )
    for line in describe(second):
        print(f"  {line}")


# -- helpers ------------------------------------------------------------------------------


def stop_and_report(process: subprocess.Popen[Any], what: str) -> None:
    stop_process(process)
    print(f"  stopped {what}")


def report_deleted_keys(client: redis.Redis, prefix: str) -> None:
    try:
        print(f"  deleted {delete_keys(client, prefix)} keys under {prefix}:")
    except redis.RedisError as exc:
        print(f"  could not delete the keys under {prefix}: ({exc})", file=sys.stderr)


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly as Ctrl+C does


def main() -> int:
    try:
        config = Config.from_env()
    except ValueError as exc:
        print(f"demo: DEMO_* variables must be numbers: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"contact-sync demo (seed {config.seed}; DEMO_SEED={config.seed} replays this traffic)")
    cleanup = ExitStack()
    try:
        return run(config, cleanup)
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what the demo started", file=sys.stderr)
        return 130
    finally:
        # Cleanup must finish: a second Ctrl+C would leave a worker or keys behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\ncleanup")
        cleanup.close()


if __name__ == "__main__":
    sys.exit(main())
