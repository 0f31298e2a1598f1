"""Prometheus metrics: workers record into Redis, one exporter turns Redis into metrics.

Why not prometheus_client's own counters in the workers: Celery's prefork pool runs tasks
in child processes that come and go, so per-process registries would need the client's
multiprocess mode and a shared directory on every host, and several hosts would still
have to be scraped and summed. The pipeline's counters already live in Redis
(``{prefix}:stats``, written atomically by the Lua scripts), so a sync task adds only what
Redis does not know yet (API latency by status, limiter wait, config errors) to
``{prefix}:metrics``, in one round trip. ``contact-sync metrics`` reads both, plus
``read_status()``, when Prometheus scrapes: one exporter for any number of workers.

Each destination keeps its own two hashes (under its ``Keys.scope``); the exporter reads
those of every destination and labels their series ``destination="NAME"``.

prometheus-client is the optional ``metrics`` extra. Only the exporter imports it, so the
worker's path (``record_outcome``) works without it.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from worker.errors import ApiConfigError
from worker.keys import DEFAULT_DESTINATION, Keys
from worker.logging import get_logger
from worker.redis_client import text as _text
from worker.status import Status, read_status

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector as _CollectorBase
    from prometheus_client.registry import CollectorRegistry

    from worker.sync import SyncOutcome
else:
    # The registry only calls collect(); subclassing the ABC for real would import
    # prometheus-client on every worker.
    _CollectorBase = object

__all__ = [
    "LATENCY_BUCKETS_S",
    "ContactSyncCollector",
    "build_registry",
    "outcome_increments",
    "record_outcome",
    "serve_metrics",
]

log = get_logger("contact_sync.metrics")

# Upper bounds (s) of the API latency buckets. ActiveCampaign answers in 0.1-1 s; the
# client's timeout (10 s by default) ends the tail.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_INF = "+Inf"
# The status label of a request that got no HTTP answer (timeout, connection error).
NO_RESPONSE_STATUS = "transport_error"
LIMITER_WAIT_FIELD = "limiter_wait_seconds_total"
# The label of every series read from one destination's keys (worker/destinations.py).
_DESTINATION = "destination"

# syncs_total{outcome} <- the {prefix}:stats counter the Lua scripts keep for it. There is
# no "created": no answer says it (docs/decisions.md, "Create or update: from our own state").
_SYNC_OUTCOMES = {
    "updated": "synced_updated",  # a contact synced before
    "first": "synced_unknown",  # a first sync: ActiveCampaign may have had the contact
    "unchanged": "unchanged",
    "retry": "retries",
    "bulk": "synced_bulk",  # confirmed by a completed bulk import batch
}


def _le_text(upper_s: float) -> str:
    # Python's repr matches how Prometheus clients write ``le`` ("0.05", "1.0", "10.0").
    return repr(float(upper_s))


def outcome_increments(outcome: SyncOutcome) -> dict[str, int | float]:
    """The ``{prefix}:metrics`` fields one sync outcome adds to (ints count, floats are s).

    A request was made when the outcome carries ``latency_ms``; its ``status`` labels the
    histogram (``transport_error`` when there was no HTTP answer). Buckets are cumulative,
    as Prometheus exposes them.
    """
    fields = outcome.fields
    increments: dict[str, int | float] = {}
    wait_s = float(fields.get("limiter_wait_ms", 0.0)) / 1000 + float(fields.get("waited_s", 0.0))
    if wait_s > 0:
        increments[LIMITER_WAIT_FIELD] = wait_s
    for kind, count in (fields.get("requests") or {}).items():
        increments[f"requests:{kind}"] = int(count)
    if fields.get("latency_ms") is None:
        return increments
    status = NO_RESPONSE_STATUS if fields.get("status") is None else str(fields["status"])
    latency_s = max(0.0, float(fields["latency_ms"]) / 1000)
    for upper_s in LATENCY_BUCKETS_S:
        if latency_s <= upper_s:
            increments[f"api_latency_bucket:{status}:{_le_text(upper_s)}"] = 1
    increments[f"api_latency_bucket:{status}:{_INF}"] = 1
    increments[f"api_latency_sum:{status}"] = latency_s
    increments[f"api_latency_count:{status}"] = 1
    if fields.get("error") == ApiConfigError.__name__:
        increments[f"config_errors:{status}"] = 1
    return increments


def record_outcome(client: redis.Redis, keys: Keys, outcome: SyncOutcome) -> None:
    """Add one sync outcome to ``{prefix}:metrics`` in one round trip. Never raises.

    Outcomes that made no request and waited for no slot (unchanged, lease lost) cost nothing.
    """
    try:
        increments = outcome_increments(outcome)
        if not increments:
            return
        # MULTI/EXEC: a scrape never sees a bucket counted without its _count.
        pipe: Any = client.pipeline(transaction=True)
        for name, amount in increments.items():
            if isinstance(amount, float):
                pipe.hincrbyfloat(keys.metrics, name, amount)
            else:
                pipe.hincrby(keys.metrics, name, amount)
        pipe.execute()
    except Exception as exc:
        # The outcome is already stored; losing one observation beats failing the task.
        log.warning("metrics.record_failed", error=type(exc).__name__, detail=str(exc))


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one scrape read for one destination: its status and its ``{scope}:metrics``."""

    destination: str
    status: Status
    recorded: dict[str, float]


class ContactSyncCollector(_CollectorBase):
    """A prometheus_client collector that reads Redis at every scrape.

    Every series of a destination's own keys carries ``destination="NAME"`` (``default``
    included, so queries can ``sum by (destination)`` whatever the configuration); the
    stream's figures and ``contact_sync_up`` are shared and have no such label.

    If Redis does not answer, only ``contact_sync_up 0`` is exposed: stale numbers would
    look healthy.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        destinations: Iterable[str] = (DEFAULT_DESTINATION,),
    ) -> None:
        self._redis: Any = client  # redis-py types replies as Awaitable | Any
        self._keys = keys
        self._destinations = tuple(destinations) or (DEFAULT_DESTINATION,)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up_help = "1 if the exporter could read contact-sync's state from Redis, else 0"
        try:
            readings = [self._read(name) for name in self._destinations]
        except redis.RedisError as exc:
            log.warning("metrics.redis_unavailable", error=type(exc).__name__, detail=str(exc))
            yield GaugeMetricFamily("contact_sync_up", up_help, value=0)
            return
        yield GaugeMetricFamily("contact_sync_up", up_help, value=1)
        yield from _counters(readings)
        yield _latency_histogram(readings)
        yield from _shared_gauges(readings[0].status)
        yield from _destination_gauges(readings)

    def _read(self, destination: str) -> _Reading:
        keys = self._keys.for_destination(destination)
        status = read_status(self._redis, keys)
        recorded = {
            _text(name): float(value) for name, value in self._redis.hgetall(keys.metrics).items()
        }
        return _Reading(destination, status, recorded)


# Counters read straight from a destination's {scope}:stats: (name, help, stat field).
_STAT_COUNTERS: tuple[tuple[str, str, str], ...] = (
    (
        "contact_sync_events_ingested_total",
        "Valid events merged from the stream (stale ones included)",
        "events_ingested",
    ),
    (
        "contact_sync_events_stale_total",
        "Valid events older than the value already held for every attribute they set",
        "events_stale",
    ),
    (
        "contact_sync_events_invalid_total",
        "Stream entries that failed validation and went to dead letters",
        "events_invalid",
    ),
    (
        "contact_sync_dead_lettered_total",
        "Dead letters written (invalid events and failed syncs); replay does not lower it",
        "dead_lettered",
    ),
    (
        "contact_sync_dead_letters_trimmed_total",
        "Dead letters dropped by the bounds (DEAD_LETTER_MAX_COUNT, DEAD_LETTER_MAX_AGE_S)",
        "dead_trimmed",
    ),
    (
        "contact_sync_rate_limited_total",
        "429 answers received from ActiveCampaign",
        "rate_limited",
    ),
    (
        "contact_sync_bulk_rate_limited_total",
        'Bulk import answers "Rate limit exceeded." (HTTP 400); each pauses bulk import',
        "bulk_rate_limited",
    ),
    (
        "contact_sync_bulk_polls_total",
        "GET /import/info requests made to follow batches",
        "bulk_polls",
    ),
    (
        "contact_sync_bulk_to_sync_total",
        "Emails handed from bulk import to the sync path (what bulk cannot express, failures)",
        "bulk_to_sync",
    ),
)
_BULK_OUTCOMES = ("submitted", "completed", "failed", "interrupted")


def _counters(readings: Sequence[_Reading]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily

    def family(name: str, documentation: str, *labels: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, documentation, labels=[_DESTINATION, *labels])

    for name, documentation, stat in _STAT_COUNTERS:
        counter = family(name, documentation)
        for reading in readings:
            counter.add_metric([reading.destination], reading.status.counters.get(stat, 0))
        yield counter
    syncs = family("contact_sync_syncs_total", "Sync attempts by outcome", "outcome")
    for reading in readings:
        stats = reading.status.counters
        for outcome, stat in _SYNC_OUTCOMES.items():
            syncs.add_metric([reading.destination, outcome], stats.get(stat, 0))
        # The dead_lettered stat counts invalid events too; both are kept by the same scripts.
        dead_syncs = stats.get("dead_lettered", 0) - stats.get("events_invalid", 0)
        syncs.add_metric([reading.destination, "dead_lettered"], max(0, dead_syncs))
    yield syncs
    wait = family(
        "contact_sync_limiter_wait_seconds_total",
        "Time sync tasks spent waiting for a rate-limiter slot",
    )
    for reading in readings:
        wait.add_metric([reading.destination], reading.recorded.get(LIMITER_WAIT_FIELD, 0.0))
    yield wait
    batches = family(
        "contact_sync_bulk_batches_total",
        "Bulk import batches by outcome (submitted, completed, failed, interrupted)",
        "outcome",
    )
    for reading in readings:
        for outcome in _BULK_OUTCOMES:
            value = reading.status.counters.get(f"bulk_batches_{outcome}", 0)
            batches.add_metric([reading.destination, outcome], value)
    yield batches
    requests = family(
        "contact_sync_api_requests_total",
        "API requests made by sync tasks, by kind (contact_sync, contactTags, contactLists, ...)",
        "kind",
    )
    _add_recorded(requests, readings, "requests:")
    yield requests
    config = family(
        "contact_sync_config_errors_total",
        "Answers that mean the configuration is wrong (401/402/403/404, redirects)",
        "status",
    )
    _add_recorded(config, readings, "config_errors:")
    yield config


def _add_recorded(family: Any, readings: Sequence[_Reading], prefix: str) -> None:
    """One sample per ``{prefix}{label}`` field of each destination's metrics hash."""
    for reading in readings:
        for name, value in sorted(reading.recorded.items()):
            if name.startswith(prefix):
                family.add_metric([reading.destination, name.removeprefix(prefix)], value)


def _latency_histogram(readings: Sequence[_Reading]) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    histogram = HistogramMetricFamily(
        "contact_sync_api_request_duration_seconds",
        "Duration of ActiveCampaign API requests by HTTP status",
        labels=[_DESTINATION, "status"],
    )
    for reading in readings:
        recorded = reading.recorded
        statuses = sorted(
            name.partition(":")[2] for name in recorded if name.startswith("api_latency_count:")
        )
        for status in statuses:
            buckets = [
                (le, recorded.get(f"api_latency_bucket:{status}:{le}", 0.0))
                for le in map(_le_text, LATENCY_BUCKETS_S)
            ]
            buckets.append((_INF, recorded[f"api_latency_count:{status}"]))
            histogram.add_metric(
                [reading.destination, status],
                buckets,
                recorded.get(f"api_latency_sum:{status}", 0.0),
            )
    return histogram


def _shared_gauges(status: Status) -> Iterator[Metric]:
    """The events stream's figures: one stream for every destination, so no label."""
    from prometheus_client.core import GaugeMetricFamily

    yield GaugeMetricFamily(
        "contact_sync_backlog_events", "Stream entries not yet merged", value=status.stream_backlog
    )
    yield GaugeMetricFamily(
        "contact_sync_oldest_event_age_seconds",
        "Age of the oldest entry still in the stream (0 when empty)",
        value=status.oldest_event_age_s or 0.0,
    )


# Gauges of each destination's status: (name, help, its value in a Status).
_DESTINATION_GAUGES: tuple[tuple[str, str, Callable[[Status], float]], ...] = (
    (
        "contact_sync_pending_contacts",
        "Emails with a sync scheduled (debounce, backoff or due now)",
        lambda status: status.pending_contacts,
    ),
    ("contact_sync_due_contacts", "Emails whose sync is due now", lambda status: status.due_now),
    (
        "contact_sync_in_flight",
        "Emails under lease: a sync task is queued or running",
        lambda status: status.in_flight,
    ),
    (
        "contact_sync_most_overdue_seconds",
        "How late the most overdue scheduled sync is (0 when none is late)",
        lambda status: status.most_overdue_s or 0.0,
    ),
    (
        "contact_sync_dead_letters",
        "Dead letters currently stored",
        lambda status: status.dead_letters,
    ),
    (
        "contact_sync_limiter_paused_seconds",
        "Seconds left of a pause ordered by a 429's Retry-After",
        lambda status: status.limiter_paused_for_s,
    ),
    (
        "contact_sync_bulk_mode",
        "1 while the backlog drains through bulk import",
        lambda status: status.bulk_mode,
    ),
    (
        "contact_sync_bulk_batches",
        "Bulk import batches in flight",
        lambda status: status.bulk_batches,
    ),
    (
        "contact_sync_bulk_in_flight",
        "Emails in bulk import batches",
        lambda status: status.bulk_in_flight,
    ),
    (
        "contact_sync_bulk_oldest_batch_age_seconds",
        "Age of the oldest bulk import batch in flight (0 when none)",
        lambda status: status.bulk_oldest_batch_age_s or 0.0,
    ),
)


def _destination_gauges(readings: Sequence[_Reading]) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    for name, documentation, value_of in _DESTINATION_GAUGES:
        gauge = GaugeMetricFamily(name, documentation, labels=[_DESTINATION])
        for reading in readings:
            gauge.add_metric([reading.destination], float(value_of(reading.status)))
        yield gauge


def build_registry(
    client: redis.Redis, keys: Keys, destinations: Iterable[str] = (DEFAULT_DESTINATION,)
) -> CollectorRegistry:
    """A fresh registry holding only contact-sync's collector (no process metrics), for the
    given destinations under ``keys``' prefix."""
    from prometheus_client import CollectorRegistry

    # auto_describe=False: registering must not call collect(), which needs Redis.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContactSyncCollector(client, keys, destinations))
    return registry


def serve_metrics(
    client: redis.Redis,
    keys: Keys,
    *,
    host: str,
    port: int,
    destinations: Iterable[str] = (DEFAULT_DESTINATION,),
) -> int:
    """Serve ``/metrics`` on ``host:port`` (0 picks a free port) until SIGTERM or SIGINT.

    Prints one JSON line with the URL once listening. Returns the exit status (0).
    """
    from prometheus_client import start_http_server

    registry = build_registry(client, keys, destinations)
    server, thread = start_http_server(port, addr=host, registry=registry)
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        bound = server.server_address[1]
        where = f"[{host}]" if ":" in host else host
        print(
            json.dumps({"event": "metrics.listening", "url": f"http://{where}:{bound}/metrics"}),
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.shutdown()
        server.server_close()
        thread.join(5)
    return 0
