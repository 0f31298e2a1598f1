"""`contact-sync metrics`: a real exporter process scraped after real worker traffic."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests._redis_server import free_port
from tests.integration._harness import WorkerPool, drained, wait_until
from worker.deadletters import DeadLetters
from worker.keys import Keys

VALID_EMAILS = [f"metrics.{n}@example.com" for n in range(4)]
REJECTED_EMAIL = "bad.metrics@example.com"
WRONG_TOKEN = "rotated-by-the-customer-0000"

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@contextmanager
def exporter(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run `contact-sync metrics --port 0` and yield the process and the URL it printed."""
    command = [
        sys.executable,
        "-c",
        "import sys; from worker.cli import main; sys.exit(main())",
        "metrics",
        "--port",
        "0",
        *args,
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the exporter printed nothing within 30 s"
        first = process.stdout.readline()
        assert first, f"the exporter exited with {process.wait(5)}: {process.stderr.read()}"
        yield process, json.loads(first)["url"]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def scrape(url: str) -> Samples:
    """GET the URL and parse the exposition into sample name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (our own http URL)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape_until(
    url: str, ready: Callable[[Samples], bool], *, timeout_s: float, message: str
) -> Samples:
    """Scrape until ``ready`` holds for the samples; return those samples."""
    found: list[Samples] = []

    def attempt() -> bool:
        found[:] = [scrape(url)]
        return ready(found[0])

    wait_until(attempt, timeout_s=timeout_s, interval_s=0.2, message=message)
    return found[0]


def one(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent; a per-destination series is ``default``'s unless
    ``destination`` is given (the stream's gauges and contact_sync_up have no such label)."""
    series = samples.get(name, {})
    exact = tuple(sorted(labels.items()))
    if exact in series or "destination" in labels:
        return series.get(exact, 0.0)
    return series.get(tuple(sorted({**labels, "destination": "default"}.items())), 0.0)


def test_metrics_reflect_real_traffic(
    workers: WorkerPool,
    worker_env: dict[str, str],
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
) -> None:
    """After real syncs, a 422 and a poison entry, /metrics counts them exactly; a wrong token shows as config errors."""
    emulator_admin.set_faults(reject_emails=["^bad.*@example\\.com$"])
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    for email in VALID_EMAILS:
        producer.contact_changed(email, first_name="Metric")
    producer.contact_changed(REJECTED_EMAIL, first_name="Rejected")
    redis_conn.xadd(keys.events, {"event": "{this is not json"})

    dead = DeadLetters(redis_conn, keys)
    wait_until(lambda: dead.count() == 2, timeout_s=30, message="two dead letters")
    wait_until(
        lambda: len(emulator_admin.contacts()) == len(VALID_EMAILS),
        timeout_s=30,
        message="every valid contact delivered",
    )
    wait_until(lambda: drained(redis_conn, keys), timeout_s=15, message="drained")

    with exporter(worker_env) as (process, url):
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/metrics")
        count = "contact_sync_api_request_duration_seconds_count"
        # The task records latency just after finishing the sync, so give it a moment.
        samples = scrape_until(
            url,
            lambda s: one(s, count, status="422") == 1,
            timeout_s=10,
            message="the 422 in the histogram",
        )
        n = len(VALID_EMAILS)
        assert one(samples, "contact_sync_up") == 1
        assert one(samples, "contact_sync_syncs_total", outcome="first", destination="default") == n
        assert one(samples, "contact_sync_syncs_total", outcome="dead_lettered") == 1
        assert one(samples, "contact_sync_syncs_total", outcome="retry") == 0
        assert one(samples, "contact_sync_events_ingested_total") == n + 1
        assert one(samples, "contact_sync_events_invalid_total") == 1
        assert one(samples, "contact_sync_dead_lettered_total") == 2
        assert one(samples, count, status="201") == n
        bucket = "contact_sync_api_request_duration_seconds_bucket"
        assert one(samples, bucket, status="201", le="+Inf") == n
        assert one(samples, bucket, status="201", le="10.0") == n  # well under the 2 s timeout
        assert one(samples, "contact_sync_api_request_duration_seconds_sum", status="201") > 0
        assert "contact_sync_limiter_wait_seconds_total" in samples
        assert one(samples, "contact_sync_rate_limited_total") == 0
        gauges = {
            "contact_sync_backlog_events": 0,
            "contact_sync_pending_contacts": 0,
            "contact_sync_in_flight": 0,
            "contact_sync_oldest_event_age_seconds": 0,
            "contact_sync_most_overdue_seconds": 0,
            "contact_sync_dead_letters": 2,
        }
        for name, value in gauges.items():
            assert name in samples, name
            assert one(samples, name) == value, name

        # A rotated token: every request now gets 403, which the exporter shows at once.
        emulator_admin.set_token(WRONG_TOKEN)
        producer.contact_changed(VALID_EMAILS[0], first_name="Changed")
        samples = scrape_until(
            url,
            lambda s: one(s, "contact_sync_config_errors_total", status="403") >= 1,
            timeout_s=20,
            message="a config error",
        )
        assert one(samples, "contact_sync_syncs_total", outcome="retry") >= 1
        assert one(samples, count, status="403") >= 1

        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_exporter_without_redis_reports_down_and_stops_on_sigterm(
    worker_env: dict[str, str],
) -> None:
    """With Redis unreachable /metrics still answers, with only contact_sync_up 0; SIGTERM exits 0."""
    env = {**worker_env, "CONTACT_SYNC_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with exporter(env) as (process, url):
        started = time.monotonic()
        samples = scrape(url)
        assert samples == {"contact_sync_up": {(): 0.0}}
        # redis-py's default retries make a refused connection take seconds, not more.
        assert time.monotonic() - started < 10
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stdout is not None
        warnings: list[dict[str, Any]] = [
            json.loads(line) for line in process.stdout.read().splitlines() if line.strip()
        ]
        assert {line["event"] for line in warnings} == {"metrics.redis_unavailable"}


def test_exporter_on_a_taken_port_exits_1_with_one_line(worker_env: dict[str, str]) -> None:
    """A port in use stops `contact-sync metrics` with exit 1 and a message naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from worker.cli import main; sys.exit(main())",
                "metrics",
                "--port",
                str(port),
            ],
            env=worker_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.startswith(f"contact-sync: metrics: cannot serve on 127.0.0.1:{port}:")
    assert len(done.stderr.splitlines()) == 1
