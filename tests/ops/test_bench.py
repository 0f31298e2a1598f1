"""ops/bench: the pure parts of the benchmark (no Redis, no workers, no emulator)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ops.bench import replicas
from ops.bench.destinations import API_RATE, write_destinations_file
from ops.bench.procs import REPO
from ops.bench.run import FULL, GROUPS, QUICK, _parser
from ops.bench.stats import (
    Figure,
    budget_use,
    drain_ratio,
    format_table,
    ideal_drain_s,
    longest_stall_s,
    max_in_window,
    percentile,
    span_rate,
    steady_throughput,
    windowed_rate,
)
from ops.bench.workload import WorkloadEvent, generate, needed_requests, sync_batch
from worker.destinations import load_destinations


def event(email: str, at_us: int, **attributes: str) -> WorkloadEvent:
    return WorkloadEvent(email, attributes, at_us)


def test_percentile_interpolates_between_ranks() -> None:
    """Percentiles follow numpy's linear definition: ends are min and max, midpoints interpolate."""
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_ideal_drain_is_emails_over_rate() -> None:
    """The ideal drain time of 5,000 emails at 100 requests/s is 50 s."""
    assert ideal_drain_s(5000, rate_per_s=100) == 50.0
    with pytest.raises(ValueError, match="positive"):
        ideal_drain_s(10, rate_per_s=0)


def test_drain_ratio_of_a_sender_at_exactly_the_rate_is_one() -> None:
    """One request every 1/rate seconds drains in exactly the ideal time; half the pace takes twice as long."""
    smooth = [n / 50 for n in range(500)]
    assert drain_ratio(smooth, rate_per_s=50) == pytest.approx(1.0)
    slow = [n / 25 for n in range(500)]
    assert drain_ratio(slow, rate_per_s=50) == pytest.approx(2.0, rel=0.01)


def test_windowed_rate_sees_bursts_and_smooth_senders_alike() -> None:
    """A smooth sender and one that bursts its whole window at once score the same sustained rate."""
    smooth = [n / 40 for n in range(800)]  # 40/s for 20 s
    bursts = [
        second + n * 1e-4 for second in range(20) for n in range(40)
    ]  # 40 at each whole second
    assert windowed_rate(smooth) == pytest.approx(40, rel=0.01)
    assert windowed_rate(bursts) == pytest.approx(40, rel=0.01)
    assert budget_use(smooth, rate_per_s=50) == pytest.approx(0.8, rel=0.01)
    with pytest.raises(ValueError, match="two windows"):
        windowed_rate([0.0, 0.5, 1.0])


def test_windowed_rate_never_exceeds_what_any_window_held() -> None:
    """Arrivals that never put more than 5 in any 1 s window score at most 5 per window."""
    arrivals = [n * 0.21 for n in range(100)]  # 4.76/s, at most 5 in any second
    assert windowed_rate(arrivals) <= 5.0


def test_steady_throughput_ignores_start_up() -> None:
    """Throughput counts from the first sample with progress to the first that reached the total."""
    samples = [(0.0, 0), (5.0, 0), (6.0, 100), (8.0, 500), (9.0, 500)]
    assert steady_throughput(samples, total=500) == 200.0
    with pytest.raises(ValueError, match="completion"):
        steady_throughput([(0.0, 0), (1.0, 10)], total=500)


def test_span_rate_counts_from_the_first_arrival_to_the_last() -> None:
    """Five arrivals over 2 s are 2 per second: the four after the first over the span."""
    assert span_rate([10.0, 10.5, 11.0, 11.5, 12.0]) == 2.0
    assert span_rate([3.0, 1.0]) == 0.5  # order does not matter
    with pytest.raises(ValueError, match="two arrivals"):
        span_rate([1.0])
    with pytest.raises(ValueError, match="no time"):
        span_rate([1.0, 1.0])


def test_longest_stall_is_the_longest_run_of_samples_without_progress() -> None:
    """A stall runs from the last sample with progress to the next one with progress."""
    samples = [(0.0, 0), (0.1, 50), (0.2, 50), (0.5, 50), (0.6, 80), (0.7, 80), (0.8, 90)]
    assert longest_stall_s(samples) == pytest.approx(0.4)
    assert longest_stall_s([(0.0, 0), (1.0, 10)]) == 0.0


def test_only_accepts_the_known_groups_and_both_scales_run_the_throughput_figure() -> None:
    """--only takes any of the groups, throughput included, and refuses a misspelt one."""
    assert _parser().parse_args(["--only", "throughput,ingest"]).only == {"throughput", "ingest"}
    assert "throughput" in GROUPS
    with pytest.raises(SystemExit):
        _parser().parse_args(["--only", "througput"])
    assert FULL.throughput_events // 10 >= QUICK.throughput_events // 10 >= 100


def test_only_accepts_the_destinations_and_replicas_groups() -> None:
    """Issue 12's figures are groups of their own, run by a plain ``make bench`` too."""
    assert _parser().parse_args(["--only", "destinations,replicas"]).only == {
        "destinations",
        "replicas",
    }
    assert {"destinations", "replicas"} <= set(GROUPS)
    # Each phase lasts long enough at 5/s for a rate: 15-20 s in the quick run, more in the full.
    assert 15 <= QUICK.destinations_emails / API_RATE <= 25
    assert FULL.destinations_emails > QUICK.destinations_emails
    assert FULL.replica_calls >= QUICK.replica_calls > 0


def test_every_group_is_documented_in_performance_md() -> None:
    """docs/performance.md lists every --only group and says how to reproduce each."""
    text = (REPO / "docs" / "performance.md").read_text()
    listed = re.search(r"--only ([a-z,]+)", text)
    assert listed is not None
    assert listed.group(1).strip(",").split(",") == list(GROUPS)
    for group in ("destinations", "replicas"):
        assert f"python -m ops.bench --only {group}" in text, group


def test_replicas_skip_with_a_clear_row_without_redis_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a redis-server binary the replicas group reports a skip and starts nothing."""
    monkeypatch.setattr(replicas.shutil, "which", lambda name: None)
    rows = replicas.run_replicas(calls=10)
    assert [row.key for row in rows] == ["replicas_skipped"]
    assert rows[0].passed is None
    assert "redis-server is not installed" in rows[0].measured


def test_the_destinations_file_names_each_emulator_with_a_private_token_file(
    tmp_path: Path,
) -> None:
    """The bench's destinations file has the worker's shape, its tokens in owner-only files."""
    path = write_destinations_file(
        tmp_path, {"one": ("http://127.0.0.1:1", "t1"), "two": ("http://127.0.0.1:2", "t2")}
    )
    document = json.loads(path.read_text())
    assert document["two"]["url"] == "http://127.0.0.1:2"
    assert document["one"]["rate_limit"] == 5.0
    token_file = Path(document["one"]["token_file"])
    assert token_file.read_text().strip() == "t1"
    assert token_file.stat().st_mode & 0o777 == 0o600
    loaded = load_destinations(str(path), allow_insecure=False)
    assert sorted(loaded) == ["one", "two"]
    assert loaded["two"].rate_limit == 5.0


def test_max_in_window_counts_like_a_sliding_one_second_limiter() -> None:
    """Requests 200 ms apart are 5 a second, not 6; a sixth inside the second makes 6."""
    assert max_in_window([]) == 0
    # In milliseconds, so that "exactly a second apart" is exact.
    assert max_in_window([n * 200 for n in range(20)], window_s=1000) == 5
    assert max_in_window([0, 100, 200, 300, 400, 999], window_s=1000) == 6
    assert max_in_window([3000, 0, 1000, 2000], window_s=1000) == 1  # a second apart: two windows
    assert max_in_window([n * 0.25 for n in range(20)]) == 4


def test_a_throughput_workload_makes_every_email_new_and_needs_one_sync_each() -> None:
    """No repeats and no second phase: N events for N/10 emails need exactly N/10 syncs."""
    workload = generate(events=400, emails=40, repeat_share=0, late_change_share=0)
    assert [len(phase) for phase in workload.phases] == [400, 0]
    assert workload.needed == [40, 0]


def test_every_email_needs_one_request_for_a_first_batch() -> None:
    """Many events to the same emails merge into one request per email, even an email-only one."""
    batch = [
        event("a@x.com", 3, firstName="A"),
        event("a@x.com", 1, firstName="Old", phone="1"),
        event("b@x.com", 2),
    ]
    confirmed: dict = {}
    assert sync_batch(confirmed, batch, start=0) == {"a@x.com", "b@x.com"}
    assert confirmed["a@x.com"]["firstName"][0] == "A"  # last write wins by occurred_at
    assert (
        confirmed["a@x.com"]["phone"][0] == "1"
    )  # per attribute: the older event still sets phone


def test_no_op_repeats_need_no_request() -> None:
    """Re-sending confirmed values, or a change undone within the batch, is no net change."""
    confirmed: dict = {}
    sync_batch(confirmed, [event("a@x.com", 1, firstName="A", phone="1")], start=0)
    repeats = [
        event("a@x.com", 10, firstName="A"),
        event("a@x.com", 11, phone="2"),
        event("a@x.com", 12, phone="1"),  # back to the confirmed value
    ]
    assert sync_batch(confirmed, repeats, start=1) == set()


def test_older_events_than_confirmed_change_nothing() -> None:
    """An event older than the confirmed value of its attribute is ignored, even with a new value."""
    confirmed: dict = {}
    sync_batch(confirmed, [event("a@x.com", 100, firstName="New")], start=0)
    assert sync_batch(confirmed, [event("a@x.com", 50, firstName="Late")], start=1) == set()
    assert sync_batch(confirmed, [event("a@x.com", 150, firstName="Newer")], start=2) == {"a@x.com"}


def test_ties_go_to_the_later_stream_position() -> None:
    """Two events with the same occurred_at: the one written later wins, as in the worker."""
    confirmed: dict = {}
    batch = [event("a@x.com", 5, firstName="First"), event("a@x.com", 5, firstName="Second")]
    sync_batch(confirmed, batch, start=0)
    assert confirmed["a@x.com"]["firstName"][0] == "Second"


def test_generated_workload_has_the_asked_shape_and_an_exact_count() -> None:
    """generate() makes the asked number of events and repeats, and its count replays identically."""
    workload = generate(events=2000, emails=200, seed=3)
    assert workload.events == 2000
    assert workload.no_op_repeats == 400
    assert len({e.email for e in workload.phases[0]}) == 200
    assert workload.needed[0] == 200  # every email is new in phase 1
    assert 0 < workload.needed[1] < 200
    assert needed_requests(workload.phases) == workload.needed
    assert generate(events=2000, emails=200, seed=3).needed == workload.needed


def test_workload_events_become_api_shaped_contacts() -> None:
    """A workload event's contact has the API's shape: custom fields go into fieldValues."""
    contact = event("a@x.com", 1, firstName="A", **{"field:6": "2008-01-20"}).contact()
    assert contact == {
        "email": "a@x.com",
        "firstName": "A",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}],
    }


def test_table_marks_pass_fail_and_informational_rows() -> None:
    """The table shows pass, FAIL, or '-' for a row without a target, in text and in Markdown."""
    rows = [
        Figure("a", "alpha", "1", "<= 2", True, {}),
        Figure("b", "beta", "3", "<= 2", False, {}),
        Figure("c", "gamma", "x | y", "(for scale)", None, {"n": 1}),
    ]
    text = format_table(rows)
    assert "pass" in text
    assert "FAIL" in text
    assert text.splitlines()[1].startswith("-----")
    markdown = format_table(rows, markdown=True)
    assert markdown.splitlines()[1] == "|---|---|---|---|"
    assert "x \\| y" in markdown
    assert rows[2].as_json() == {
        "name": "gamma", "measured": "x | y", "target": "(for scale)", "passed": None, "n": 1,
    }  # fmt: skip
