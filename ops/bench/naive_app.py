"""The naive baseline: one Celery task per event, which validates and POSTs directly.

This is how the job is usually done first, and what contact-sync is measured against in
the same run: the same marshmallow schema (``decode_event``), the same emulator, the same
Redis (its own queue and key prefix), and Celery's own retry machinery
(``autoretry_for=(requests.RequestException,)`` with ``retry_backoff=True``; a 429 raises
through ``raise_for_status()``). No merging, no shared limiter, no skipping of no-ops.

    BENCH_NAIVE_REDIS_URL=... BENCH_NAIVE_PREFIX=... BENCH_NAIVE_API_URL=...
    BENCH_NAIVE_API_TOKEN=... celery -A ops.bench.naive_app worker

The task counts what happened in ``{prefix}:done`` and ``{prefix}:gave_up`` (a task that
exhausted its retries: the naive way loses that event), so the benchmark can tell when the
queue is through.
"""

from __future__ import annotations

import os
from typing import Any

import redis
import requests
from celery import Celery, Task, signals

from worker.schema import decode_event, sync_contact_body

__all__ = ["MAX_RETRIES", "app", "done_key", "gave_up_key", "ready_key", "sync_event"]

# The benchmark's own knobs, not the worker's configuration (worker.settings reads that).
REDIS_URL = os.environ.get("BENCH_NAIVE_REDIS_URL", "redis://127.0.0.1:1/0")
PREFIX = os.environ.get("BENCH_NAIVE_PREFIX", "bench-naive")
API_URL = os.environ.get("BENCH_NAIVE_API_URL", "http://127.0.0.1:1")
API_TOKEN = os.environ.get("BENCH_NAIVE_API_TOKEN", "")
# Celery's default is 3; 10 retries with exponential backoff ride out a long 429 storm.
MAX_RETRIES = 10

app = Celery("naive_bench", broker=REDIS_URL)
app.conf.update(
    task_default_queue=f"{PREFIX}:queue",
    broker_transport_options={"global_keyprefix": f"{PREFIX}:kombu:"},
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)

_per_process: dict[str, Any] = {}


def _resources() -> tuple[requests.Session, redis.Redis]:
    """A session and a Redis client per pool process (never shared across a fork)."""
    pid = os.getpid()
    if _per_process.get("pid") != pid:
        _per_process.update(pid=pid, session=requests.Session(),
                            redis=redis.Redis.from_url(REDIS_URL))  # fmt: skip
    return _per_process["session"], _per_process["redis"]


def ready_key(hostname: str, prefix: str = PREFIX) -> str:
    return f"{prefix}:ready:{hostname}"


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    # Celery prints its "ready." line only at INFO, and INFO would add two log lines per
    # task to the baseline; a key is how the benchmark learns that the worker consumes.
    client = redis.Redis.from_url(REDIS_URL)
    client.set(ready_key(getattr(sender, "hostname", "unknown")), 1, ex=3600)
    client.close()


def done_key(prefix: str = PREFIX) -> str:
    return f"{prefix}:done"


def gave_up_key(prefix: str = PREFIX) -> str:
    return f"{prefix}:gave_up"


@app.task(
    bind=True,
    name="naive.sync_event",
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    retry_kwargs={"max_retries": MAX_RETRIES},
    ignore_result=True,
)
def sync_event(self: Task, event_text: str, post: bool = True) -> None:
    """Validate one wire event and upsert it; ``post=False`` only validates (ingest cost)."""
    event = decode_event(event_text)  # InvalidContactEvent is not retried: the task fails
    session, client = _resources()
    if post:
        try:
            response = session.post(
                f"{API_URL}/api/3/contact/sync",
                json={"contact": sync_contact_body(event.email, event.attributes.items())},
                headers={"Api-Token": API_TOKEN},
                timeout=10,
            )
            response.raise_for_status()
        except requests.RequestException:
            if self.request.retries >= MAX_RETRIES:  # autoretry gives up after this one
                client.incr(gave_up_key())
            raise
    client.incr(done_key())
