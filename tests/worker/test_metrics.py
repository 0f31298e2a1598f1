"""worker.metrics: recording into Redis, the scrape-time collector, and the ops/ files that use it."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from tests._redis_server import free_port
from worker.client import SyncResult
from worker.errors import ApiConfigError, ApiError
from worker.keys import Keys
from worker.metrics import build_registry, outcome_increments, record_outcome
from worker.ratelimit import RateLimiter
from worker.schema import decode_event, encode_event
from worker.settings import Settings
from worker.store import MergeStore
from worker.sync import SyncOutcome, sync_contact

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "ops" / "prometheus" / "alerts.yml"
PROMETHEUS = REPO / "ops" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "ops" / "grafana" / "contact-sync.json"
METRIC_NAME = re.compile(r"\bcontact_sync_[a-z0-9_]+\b")

SYNCED = SyncOutcome(
    "contact.synced",
    fields={"email": "a@example.com", "status": 201, "latency_ms": 180.0, "limiter_wait_ms": 250.0},
)
FORBIDDEN = SyncOutcome(
    "contact.sync_retry",
    "error",
    {"error": "ApiConfigError", "status": 403, "latency_ms": 40.0, "limiter_wait_ms": 0.0},
)
TIMED_OUT = SyncOutcome(
    "contact.sync_retry",
    "warning",
    {"error": "ApiTransportError", "status": None, "latency_ms": 2000.0, "limiter_wait_ms": 0.0},
)
REJECTED = SyncOutcome(
    "contact.dead_lettered",
    "error",
    {"error": "ApiRejected", "status": 422, "latency_ms": 60.0, "limiter_wait_ms": 100.0},
)


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


def scrape(
    client: redis.Redis, keys: Keys, destinations: tuple[str, ...] = ("default",)
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> {sorted labels: value}, parsed from the text exposition."""
    text = generate_latest(build_registry(client, keys, destinations)).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def one(samples: dict[str, dict[Any, float]], name: str, **labels: str) -> float:
    """One sample's value; a per-destination series is ``default``'s unless ``destination``
    is given (shared series, such as the stream's and contact_sync_up, have no such label)."""
    series = samples[name]
    exact = tuple(sorted(labels.items()))
    if exact in series or "destination" in labels:
        return series[exact]
    return series[tuple(sorted({**labels, "destination": "default"}.items()))]


def unreachable_redis() -> redis.Redis:
    """A client for a port nobody listens on, that gives up at once instead of retrying."""
    return redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )


def metrics_hash(client: redis.Redis, keys: Keys) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.hgetall(keys.metrics).items()}


@pytest.fixture
def exported_names(redis_client: redis.Redis, keys: Keys) -> set[str]:
    """Every sample name the collector exposes once each kind of data exists."""
    for outcome in (SYNCED, FORBIDDEN):
        record_outcome(redis_client, keys, outcome)
    return set(scrape(redis_client, keys))


# -- recording ------------------------------------------------------------------------------


def test_increments_of_a_synced_request() -> None:
    """A 201 in 180 ms fills the buckets from 0.25 s up, adds sum and count, and the limiter wait."""
    assert outcome_increments(SYNCED) == {
        "limiter_wait_seconds_total": 0.25,
        "api_latency_bucket:201:0.25": 1,
        "api_latency_bucket:201:0.5": 1,
        "api_latency_bucket:201:1.0": 1,
        "api_latency_bucket:201:2.5": 1,
        "api_latency_bucket:201:5.0": 1,
        "api_latency_bucket:201:10.0": 1,
        "api_latency_bucket:201:+Inf": 1,
        "api_latency_sum:201": 0.18,
        "api_latency_count:201": 1,
    }


def test_config_errors_and_transport_errors_are_labelled_by_status() -> None:
    """A 403 counts as a config error under its status; a request with no answer is transport_error."""
    forbidden = outcome_increments(FORBIDDEN)
    assert forbidden["config_errors:403"] == 1
    assert forbidden["api_latency_count:403"] == 1
    assert "limiter_wait_seconds_total" not in forbidden
    timed_out = outcome_increments(TIMED_OUT)
    assert timed_out["api_latency_count:transport_error"] == 1
    assert timed_out["api_latency_bucket:transport_error:2.5"] == 1
    assert "api_latency_bucket:transport_error:1.0" not in timed_out
    assert not any(name.startswith("config_errors") for name in timed_out)


def test_outcomes_without_a_request_record_only_limiter_waits() -> None:
    """Unchanged and lease-lost outcomes add nothing; a deferred sync adds the time it waited."""
    assert outcome_increments(SyncOutcome("contact.unchanged", fields={"merged_events": 2})) == {}
    assert outcome_increments(SyncOutcome("contact.sync_skipped", "debug", {})) == {}
    deferred = SyncOutcome("contact.sync_deferred", "debug", {"waited_s": 1.5})
    assert outcome_increments(deferred) == {"limiter_wait_seconds_total": 1.5}


def test_record_outcome_writes_the_fields_to_the_metrics_hash(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """Recorded outcomes accumulate in {prefix}:metrics; an outcome with nothing to add writes nothing."""
    record_outcome(redis_client, keys, SyncOutcome("contact.unchanged", fields={}))
    assert not redis_client.exists(keys.metrics)

    for outcome in (SYNCED, SYNCED, FORBIDDEN, REJECTED):
        record_outcome(redis_client, keys, outcome)

    stored = metrics_hash(redis_client, keys)
    assert stored["api_latency_count:201"] == 2
    assert stored["api_latency_bucket:201:0.25"] == 2
    assert "api_latency_bucket:201:0.1" not in stored
    assert stored["api_latency_sum:201"] == pytest.approx(0.36)
    assert stored["api_latency_count:422"] == 1
    assert stored["config_errors:403"] == 1
    assert stored["limiter_wait_seconds_total"] == pytest.approx(0.6)


def test_record_outcome_swallows_redis_errors_with_a_warning(keys: Keys) -> None:
    """An unreachable Redis never fails the task: record_outcome logs a warning and returns."""
    dead = unreachable_redis()
    with capture_logs() as logs:
        record_outcome(dead, keys, SYNCED)
    (line,) = logs
    assert line["event"] == "metrics.record_failed"
    assert line["log_level"] == "warning"
    assert line["error"] == "ConnectionError"


class _Answers:
    """Stands in for ActiveCampaignClient: raises or returns what it was given."""

    def __init__(self, answer: SyncResult | ApiError) -> None:
        self.answer = answer

    def sync_contact(self, contact: dict[str, Any]) -> SyncResult:
        if isinstance(self.answer, ApiError):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    ("answer", "status", "config_error"),
    [
        (SyncResult(201, "7", 30.0), "201", False),
        (ApiConfigError(401, ["Unauthorized"]), "401", True),
    ],
)
def test_real_sync_outcomes_carry_what_record_outcome_reads(
    redis_client: redis.Redis,
    keys: Keys,
    answer: SyncResult | ApiError,
    status: str,
    config_error: bool,
) -> None:
    """Outcomes of worker.sync.sync_contact land in the histogram under their HTTP status."""
    settings = Settings(activecampaign_url="https://acct.api-us1.com", key_prefix=keys.prefix)
    store = MergeStore(redis_client, keys)
    store.ensure_group()
    _, text = encode_event(
        {"email": "jon@example.com", "firstName": "Jon"},
        occurred_at=dt.datetime(2026, 11, 29, tzinfo=dt.UTC),
    )
    store.ingest([("1-0", decode_event(text))], [], debounce_s=0)
    (claim,) = store.claim_due(max_leases=1, lease_s=60).claims
    outcome = sync_contact(
        claim.email,
        claim.lease,
        store=store,
        client=_Answers(answer),  # type: ignore[arg-type]
        limiter=RateLimiter(redis_client, keys, rate_per_s=5),
        settings=settings,
        rng=random.Random(0),
    )

    record_outcome(redis_client, keys, outcome)

    stored = metrics_hash(redis_client, keys)
    assert stored[f"api_latency_count:{status}"] == 1
    assert stored[f"api_latency_bucket:{status}:+Inf"] == 1
    assert ("limiter_wait_seconds_total" in stored) == (outcome.fields["limiter_wait_ms"] > 0)
    assert (f"config_errors:{status}" in stored) is config_error


def test_first_and_later_syncs_count_under_their_outcome_labels(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """A first sync counts as syncs_total{outcome="first"}, a later one as "updated"; none as "created"."""
    settings = Settings(activecampaign_url="https://acct.api-us1.com", key_prefix=keys.prefix)
    store = MergeStore(redis_client, keys)
    store.ensure_group()
    limiter = RateLimiter(redis_client, keys, rate_per_s=1000)
    for second, name in enumerate(["Jon", "John"]):
        _, text = encode_event(
            {"email": "jon@example.com", "firstName": name},
            occurred_at=dt.datetime(2026, 11, 29, 0, 0, second, tzinfo=dt.UTC),
        )
        store.ingest([(f"{second + 1}-0", decode_event(text))], [], debounce_s=0)
        (claim,) = store.claim_due(max_leases=1, lease_s=60).claims
        sync_contact(
            claim.email,
            claim.lease,
            store=store,
            client=_Answers(SyncResult(201, "7", 30.0)),  # type: ignore[arg-type]
            limiter=limiter,
            settings=settings,
            rng=random.Random(0),
        )

    syncs = scrape(redis_client, keys)["contact_sync_syncs_total"]
    assert {dict(labels)["outcome"]: value for labels, value in syncs.items() if value} == {
        "first": 1,
        "updated": 1,
    }
    assert not any(dict(labels)["outcome"] == "created" for labels in syncs)


# -- the collector --------------------------------------------------------------------------


def test_collector_exposes_counters_histogram_and_gauges(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """A scrape turns the stats hash, the metrics hash and the pipeline state into metrics."""
    redis_client.hset(
        keys.stats,
        mapping={
            "events_ingested": 12,
            "events_stale": 1,
            "events_invalid": 2,
            "dead_lettered": 3,
            "synced_unknown": 5,
            "synced_updated": 4,
            "unchanged": 2,
            "retries": 6,
            "rate_limited": 1,
        },
    )
    for outcome in (SYNCED, SYNCED, FORBIDDEN, REJECTED):
        record_outcome(redis_client, keys, outcome)
    redis_client.xadd(keys.events, {"event": "{}"})
    seconds, _ = redis_client.time()
    redis_client.zadd(keys.due, {"late@example.com": (int(seconds) - 30) * 1000})
    redis_client.zadd(keys.leases, {"busy@example.com": (int(seconds) + 60) * 1000})
    redis_client.xadd(keys.dead, {"reason": "api_rejected"})

    samples = scrape(redis_client, keys)

    assert one(samples, "contact_sync_up") == 1
    assert one(samples, "contact_sync_events_ingested_total") == 12
    assert one(samples, "contact_sync_events_stale_total") == 1
    assert one(samples, "contact_sync_events_invalid_total") == 2
    assert one(samples, "contact_sync_dead_lettered_total") == 3
    syncs = {
        outcome: one(samples, "contact_sync_syncs_total", outcome=outcome)
        for outcome in ("first", "updated", "unchanged", "retry", "dead_lettered")
    }
    assert syncs == {
        "first": 5,
        "updated": 4,
        "unchanged": 2,
        "retry": 6,
        "dead_lettered": 1,
    }
    assert one(samples, "contact_sync_rate_limited_total") == 1
    assert one(samples, "contact_sync_limiter_wait_seconds_total") == pytest.approx(0.6)
    assert one(samples, "contact_sync_config_errors_total", status="403") == 1

    bucket = "contact_sync_api_request_duration_seconds_bucket"
    assert one(samples, bucket, status="201", le="0.1") == 0
    assert one(samples, bucket, status="201", le="0.25") == 2
    assert one(samples, bucket, status="201", le="+Inf") == 2
    assert one(samples, bucket, status="403", le="0.05") == 1
    assert one(samples, "contact_sync_api_request_duration_seconds_count", status="422") == 1
    assert one(
        samples, "contact_sync_api_request_duration_seconds_sum", status="201"
    ) == pytest.approx(0.36)

    assert one(samples, "contact_sync_backlog_events") == 1
    assert one(samples, "contact_sync_pending_contacts") == 1
    assert one(samples, "contact_sync_due_contacts") == 1
    assert one(samples, "contact_sync_in_flight") == 1
    assert one(samples, "contact_sync_dead_letters") == 1
    assert one(samples, "contact_sync_oldest_event_age_seconds") >= 0
    assert 29 <= one(samples, "contact_sync_most_overdue_seconds") < 40
    assert one(samples, "contact_sync_limiter_paused_seconds") == 0


def test_collector_on_an_empty_prefix_reports_zeros(redis_client: redis.Redis, keys: Keys) -> None:
    """Before any traffic every counter and gauge reads 0 and the histogram has no series."""
    samples = scrape(redis_client, keys)

    assert one(samples, "contact_sync_up") == 1
    assert one(samples, "contact_sync_syncs_total", outcome="first") == 0
    assert one(samples, "contact_sync_oldest_event_age_seconds") == 0
    assert one(samples, "contact_sync_most_overdue_seconds") == 0
    assert not any(name.startswith("contact_sync_api_request_duration") for name in samples)


def test_collector_reports_only_up_0_when_redis_is_unreachable(keys: Keys) -> None:
    """Without Redis the scrape still answers, with contact_sync_up 0 and nothing else."""
    dead = unreachable_redis()
    with capture_logs() as logs:
        samples = scrape(dead, keys)

    assert samples == {"contact_sync_up": {(): 0.0}}
    assert [line["event"] for line in logs] == ["metrics.redis_unavailable"]


# -- several destinations -------------------------------------------------------------------

SHARED_SERIES = {
    "contact_sync_up",
    "contact_sync_backlog_events",
    "contact_sync_oldest_event_age_seconds",
}


def test_every_destination_has_its_own_labelled_series(
    redis_client: redis.Redis, keys: Keys
) -> None:
    """Each destination's counters, histogram and gauges come from its own keys under
    destination="NAME"; the shared stream's gauges are exposed once, without the label."""
    a, b = keys.for_destination("a"), keys.for_destination("b")
    redis_client.hset(a.stats, mapping={"synced_unknown": 3, "rate_limited": 1})
    redis_client.hset(b.stats, mapping={"synced_unknown": 5, "synced_updated": 2})
    record_outcome(redis_client, a, SYNCED)
    record_outcome(redis_client, b, FORBIDDEN)
    seconds, _ = redis_client.time()
    redis_client.zadd(b.due, {"late@example.com": (int(seconds) - 30) * 1000})
    redis_client.xadd(a.dead, {"reason": "api_rejected"})
    redis_client.xadd(keys.dead, {"reason": "unknown_destination"})
    redis_client.hset(keys.stats, mapping={"events_invalid": 1, "dead_lettered": 1})
    redis_client.xadd(keys.events, {"event": "{}"})

    samples = scrape(redis_client, keys, ("a", "b", "default"))

    def per_destination(name: str, **labels: str) -> dict[str, float]:
        return {
            destination: one(samples, name, destination=destination, **labels)
            for destination in ("a", "b", "default")
        }

    assert per_destination("contact_sync_syncs_total", outcome="first") == {
        "a": 3,
        "b": 5,
        "default": 0,
    }
    assert per_destination("contact_sync_syncs_total", outcome="updated")["b"] == 2
    assert per_destination("contact_sync_rate_limited_total") == {"a": 1, "b": 0, "default": 0}
    assert per_destination("contact_sync_dead_letters") == {"a": 1, "b": 0, "default": 1}
    assert per_destination("contact_sync_events_invalid_total") == {"a": 0, "b": 0, "default": 1}
    assert per_destination("contact_sync_due_contacts") == {"a": 0, "b": 1, "default": 0}
    assert 29 <= one(samples, "contact_sync_most_overdue_seconds", destination="b") < 40
    assert one(samples, "contact_sync_limiter_wait_seconds_total", destination="a") == 0.25
    assert one(samples, "contact_sync_config_errors_total", destination="b", status="403") == 1
    count = "contact_sync_api_request_duration_seconds_count"
    assert one(samples, count, destination="a", status="201") == 1
    assert one(samples, count, destination="b", status="403") == 1
    assert (("destination", "b"), ("status", "201")) not in samples[count]
    assert one(samples, "contact_sync_backlog_events") == 1
    for name, series in samples.items():
        for labels in series:
            assert (name in SHARED_SERIES) != ("destination" in dict(labels)), (name, labels)


def test_a_single_account_labels_its_series_default(redis_client: redis.Redis, keys: Keys) -> None:
    """Without destinations every per-destination series says destination="default", so the
    same queries work before and after a second account is added."""
    record_outcome(redis_client, keys, SYNCED)

    samples = scrape(redis_client, keys)

    destinations = {
        dict(labels).get("destination")
        for name, series in samples.items()
        if name not in SHARED_SERIES
        for labels in series
    }
    assert destinations == {"default"}
    assert one(samples, "contact_sync_syncs_total", outcome="first", destination="default") == 0


# -- ops/: alert rules, Prometheus config, Grafana dashboard -------------------------------


def test_alert_rules_parse_and_use_only_exported_metrics(exported_names: set[str]) -> None:
    """Every alert in alerts.yml has an expr over exported metrics, a severity and runbook annotations."""
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {
        "ContactSyncBacklogAge",
        "ContactSyncDeadLettersGrowing",
        "ContactSyncConfigErrors",
        "ContactSyncRateLimited",
        "ContactSyncExporterDown",
    } <= names
    for rule in rules:
        used = set(METRIC_NAME.findall(rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported_names, f"{rule['alert']}: {used - exported_names}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        assert annotations["runbook_url"] == f"ops/runbook.md#{rule['alert'].lower()}"


def test_prometheus_example_loads_the_alert_rules() -> None:
    """prometheus.yml scrapes the contact-sync job and loads alerts.yml from beside it."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    for path in config["rule_files"]:
        assert (PROMETHEUS.parent / path).is_file()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "contact-sync"  # the ExporterDown alert matches on it
    assert job["static_configs"][0]["targets"]


def test_grafana_dashboard_is_valid_and_uses_only_exported_metrics(
    exported_names: set[str],
) -> None:
    """The dashboard JSON loads, has unique panel ids, and every query names exported metrics."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "contact-sync"
    assert dashboard["title"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    used: set[str] = set()
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(METRIC_NAME.findall(target["expr"]))
            assert names, f"{panel['title']}: {target['expr']}"
            assert names <= exported_names, f"{panel['title']}: {names - exported_names}"
            used |= names
    assert {
        "contact_sync_syncs_total",
        "contact_sync_api_request_duration_seconds_bucket",
        "contact_sync_backlog_events",
        "contact_sync_oldest_event_age_seconds",
        "contact_sync_in_flight",
        "contact_sync_dead_letters",
        "contact_sync_limiter_wait_seconds_total",
        "contact_sync_rate_limited_total",
    } <= used
