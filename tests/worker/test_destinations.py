"""Destinations: the file, the settings each one gets, token files read again, the pump's
lanes and the gate that keeps a failing account to one pool process."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import redis

from worker.destinations import Destination
from worker.errors import ApiTransportError, ConfigError
from worker.isolation import DestinationFailing, Gate
from worker.keys import Keys
from worker.logging import configure_logging, get_logger, redact
from worker.pump import Lane, Pump, PumpReport
from worker.ratelimit import RateLimiter
from worker.resolve import Resolved
from worker.runtime import limited_fetch
from worker.schema import encode_event
from worker.secret import Secret, TokenFile
from worker.settings import Settings, UnknownDestination
from worker.store import Claim, InvalidEntry, MergeStore


def write_file(tmp_path: Path, document: Any, *, tokens: dict[str, str] | None = None) -> str:
    for name, token in (tokens or {}).items():
        (tmp_path / f"{name}.token").write_text(token + "\n", encoding="utf-8")
    path = tmp_path / "destinations.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def entry(tmp_path: Path, name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "url": f"https://{name}.api-us1.com",
        "token_file": str(tmp_path / f"{name}.token"),
        "rate_limit": 5,
        **overrides,
    }


def test_a_destinations_file_defines_each_account_in_its_order(tmp_path: Path) -> None:
    """Each entry gets its URL (with /api/3 trimmed), token and rate limit; names keep the
    file's order; a missing rate_limit takes CONTACT_SYNC_RATE_LIMIT."""
    path = write_file(
        tmp_path,
        {
            "us": entry(tmp_path, "us", url="https://us.api-us1.com/api/3/"),
            "eu": {k: v for k, v in entry(tmp_path, "eu").items() if k != "rate_limit"},
        },
        tokens={"us": "tok-us", "eu": "tok-eu"},
    )
    settings = Settings.from_env(
        {"CONTACT_SYNC_DESTINATIONS_FILE": path, "CONTACT_SYNC_RATE_LIMIT": "3"}
    )
    assert settings.destination_names == ("us", "eu")
    assert settings.require_api() is settings
    us, eu = settings.for_destination("us"), settings.for_destination("eu")
    assert (us.activecampaign_url, us.api_token.reveal(), us.rate_limit) == (  # type: ignore[union-attr]
        "https://us.api-us1.com",
        "tok-us",
        5.0,
    )
    assert (eu.destination, eu.api_token.reveal(), eu.rate_limit) == ("eu", "tok-eu", 3.0)  # type: ignore[union-attr]
    assert settings.for_destination("us") is us  # one object per name: runtimes cache by it
    assert sorted(settings.secrets()) == ["tok-eu", "tok-us"]
    with pytest.raises(UnknownDestination):
        settings.for_destination("default")


def test_without_a_file_the_activecampaign_variables_define_default() -> None:
    """No file: one destination, default, whose settings are the settings themselves."""
    settings = Settings.from_env(
        {"ACTIVECAMPAIGN_URL": "https://acct.api-us1.com", "ACTIVECAMPAIGN_API_TOKEN": "tok"}
    )
    assert settings.destination_names == ("default",)
    assert settings.for_destination("default") is settings
    with pytest.raises(UnknownDestination):
        settings.for_destination("eu")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({}, "non-empty JSON object"),
        ([], "non-empty JSON object"),
        ({"eu west": {}}, "destination name 'eu west'"),
        ({"eu": "https://eu.api-us1.com"}, "must be an object"),
        ({"eu": {"url": "https://eu.api-us1.com"}}, "'token_file' is required"),
        ({"eu": {"token_file": "x", "url": "https://eu.api-us1.com", "tokn": 1}}, "unknown keys ['tokn']"),
        ({"eu": {"token_file": "x", "url": "https://eu.api-us1.com", "rate_limit": 0}}, "'rate_limit' must be a number"),
        ({"eu": {"token_file": "x", "url": "https://eu.api-us1.com", "rate_limit": True}}, "'rate_limit' must be a number"),
        ({"eu": {"token_file": "x", "url": "http://eu.example.com"}}, "must use https"),
        ({"eu": {"token_file": "/nonexistent/token", "url": "https://eu.api-us1.com"}}, "cannot read /nonexistent/token"),
    ],
)  # fmt: skip
def test_a_bad_destinations_file_names_the_variable_and_the_problem(
    tmp_path: Path, document: Any, problem: str
) -> None:
    path = write_file(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CONTACT_SYNC_DESTINATIONS_FILE": path})
    assert caught.value.variable.startswith("CONTACT_SYNC_DESTINATIONS_FILE")
    assert problem in str(caught.value)


def test_the_file_and_the_activecampaign_variables_together_are_refused(tmp_path: Path) -> None:
    path = write_file(tmp_path, {"eu": entry(tmp_path, "eu")}, tokens={"eu": "tok-eu"})
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {"CONTACT_SYNC_DESTINATIONS_FILE": path, "ACTIVECAMPAIGN_URL": "https://a.api-us1.com"}
        )
    assert "not both" in str(caught.value)


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    for path, problem in [
        (str(tmp_path / "missing.json"), "cannot read"),
        (str(tmp_path / "broken.json"), "is not valid JSON"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            Settings.from_env({"CONTACT_SYNC_DESTINATIONS_FILE": path})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    """At most once per check interval the file's identity is compared; a replaced file
    gives the new token, and every token held is remembered for redaction."""
    path = tmp_path / "token"
    path.write_text("tok-1\n", encoding="utf-8")
    clock, seen = Clock(), []
    token = TokenFile(str(path), variable="X", on_new=seen.append, clock=clock)
    assert token.reveal() == "tok-1"
    aside = tmp_path / "token.new"
    aside.write_text("tok-2\n", encoding="utf-8")
    os.replace(aside, path)
    assert token.reveal() == "tok-1"  # not checked again within the interval
    clock.now += 1.0
    assert token.reveal() == "tok-2"
    assert seen == ["tok-2"]
    assert token.seen() == ["tok-1", "tok-2"]
    assert "tok-1" not in repr(token)
    with pytest.raises(TypeError):
        pickle.dumps(token)


def test_a_token_file_that_goes_bad_keeps_the_last_good_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok-1", encoding="utf-8")
    clock, problems = Clock(), []
    token = TokenFile(str(path), variable="X", on_unreadable=problems.append, clock=clock)
    path.write_text("", encoding="utf-8")
    clock.now += 1.0
    assert token.reveal() == "tok-1"
    clock.now += 1.0
    assert token.reveal() == "tok-1"  # the same problem is reported once
    path.unlink()
    clock.now += 1.0
    assert token.reveal() == "tok-1"
    assert len(problems) == 2
    assert "is empty" in problems[0]
    assert "cannot read" in problems[1]


def test_settings_log_a_rotated_token_file_that_cannot_be_used(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok-1", encoding="utf-8")
    settings = Settings.from_env({"ACTIVECAMPAIGN_API_TOKEN_FILE": str(path)})
    stream = io.StringIO()
    configure_logging(stream=stream)
    path.write_text("bad token with spaces", encoding="utf-8")
    token = settings.api_token
    assert isinstance(token, TokenFile)
    token._checked_at = float("-inf")  # as if a second had passed
    assert token.reveal() == "tok-1"
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "token_file.unreadable"
    assert line["variable"] == "ACTIVECAMPAIGN_API_TOKEN_FILE"
    assert "printable ASCII" in line["problem"]
    assert "spaces" not in stream.getvalue()


def test_a_token_redacted_after_logging_was_configured_never_shows() -> None:
    stream = io.StringIO()
    configure_logging(secrets=["tok-old"], stream=stream)
    redact("tok-rotated-7")
    get_logger("t").info("x", header="Api-Token: tok-rotated-7", old="tok-old")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["header"] == "Api-Token: [REDACTED]"
    assert line["old"] == "[REDACTED]"


# -- the pump's lanes -------------------------------------------------------------------


def two_lane_pump(client: redis.Redis, prefix: str, queued: dict[str, list[Claim]]) -> Pump:
    settings = Settings(
        key_prefix=prefix,
        debounce_s=0.0,
        destinations={
            name: Destination(name, f"https://{name}.api-us1.com", Secret("t"), 1.0)
            for name in ("eu", "us")
        },
    )
    lanes = []
    for name in ("eu", "us"):
        store = MergeStore(client, Keys(prefix, name))

        def enqueue(claims: list[Claim], name: str = name) -> None:
            queued.setdefault(name, []).extend(claims)

        lanes.append(Lane(name, store, 2, Resolved, enqueue))
    root = MergeStore(client, Keys(prefix))
    root.ensure_group()
    return Pump(
        root,
        settings=settings,
        enqueue_syncs=lanes[0].enqueue_syncs,
        resolve=Resolved,
        lanes=lanes,
        consumer="pump-1",
        block_ms=10,
    )


def send(client: redis.Redis, prefix: str, email: str, destination: str, name: str) -> None:
    _, text = encode_event({"email": email, "firstName": name}, destination=destination)
    client.xadd(Keys(prefix).events, {"event": text})


def test_each_destination_merges_into_its_own_keys_and_claims_within_its_own_budget(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The same email in two destinations is two contacts; each lane leases at most its own
    budget (2 here) per cycle, so neither takes the other's; an unknown destination and the
    default that the file does not name are dead-lettered as unknown_destination."""
    queued: dict[str, list[Claim]] = {}
    invalid: list[InvalidEntry] = []
    pump = two_lane_pump(redis_client, key_prefix, queued)
    pump.on_invalid = invalid.append
    for n in range(3):
        send(redis_client, key_prefix, f"u{n}@example.com", "eu", "E")
        send(redis_client, key_prefix, f"u{n}@example.com", "us", "U")
    send(redis_client, key_prefix, "x@example.com", "mars", "M")
    send(redis_client, key_prefix, "y@example.com", "default", "D")
    report = PumpReport()
    pump.cycle(report)

    assert report.merged == 6
    assert {name: len(claims) for name, claims in queued.items()} == {"eu": 2, "us": 2}
    eu, us = Keys(key_prefix, "eu"), Keys(key_prefix, "us")
    assert redis_client.exists(eu.contact("u0@example.com"), us.contact("u0@example.com")) == 2
    assert redis_client.exists(Keys(key_prefix).contact("u0@example.com")) == 0
    assert [entry.reason for entry in invalid] == ["unknown_destination"] * 2
    letters = redis_client.xrange(Keys(key_prefix).dead)
    assert [fields[b"reason"] for _, fields in letters] == [b"unknown_destination"] * 2
    assert redis_client.xlen(Keys(key_prefix).events) == 0


def test_a_failing_destination_is_leased_one_email_at_a_time_and_gets_no_bulk_steps(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    queued: dict[str, list[Claim]] = {}
    pump = two_lane_pump(redis_client, key_prefix, queued)
    scheduled: list[str] = []
    pump.lanes = [
        dataclasses.replace(lane, schedule_bulk=lambda _, name=lane.name: scheduled.append(name))
        for lane in pump.lanes
    ]
    for n in range(4):
        send(redis_client, key_prefix, f"u{n}@example.com", "eu", "E")
        send(redis_client, key_prefix, f"u{n}@example.com", "us", "U")
    MergeStore(redis_client, Keys(key_prefix, "eu")).mark_failing(30)
    pump.cycle(PumpReport())
    assert {name: len(claims) for name, claims in queued.items()} == {"eu": 1, "us": 2}
    assert scheduled == ["us"]


def test_the_gate_lets_one_probe_through_a_failing_destination(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """Healthy: everyone sends. Failing: one probe at a time; a failed probe lets the next
    one go and the state stays failing; a successful one ends it."""
    store = MergeStore(redis_client, Keys(key_prefix, "eu"))
    assert Gate(store, probe_ttl_s=10).enter()
    store.mark_failing(30)
    first, second = Gate(store, probe_ttl_s=10), Gate(store, probe_ttl_s=10)
    assert first.enter()
    assert not second.enter()
    first.leave(succeeded=False)
    assert store.is_failing()
    assert second.enter()
    second.leave(succeeded=True)
    assert not store.is_failing()
    assert Gate(store, probe_ttl_s=10).enter()


class HangingApi:
    """Stands in for ActiveCampaignClient.catalog: every read times out."""

    def __init__(self) -> None:
        self.reads = 0

    def catalog(self, kind: str, *, before_request: Any) -> Any:
        before_request()
        self.reads += 1
        raise ApiTransportError("read timed out")
        yield  # a generator, like the client's


def test_a_catalog_read_marks_its_destination_failing_and_then_fails_at_once(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The pump reads catalogs: a read that times out marks the destination failing, and
    from then on its reads fail without a request, so the pump never waits on it again
    while the other destinations' entries flow."""
    keys = Keys(key_prefix, "eu")
    store = MergeStore(redis_client, keys)
    api = HangingApi()
    fetch = limited_fetch(
        api,  # type: ignore[arg-type]
        RateLimiter(redis_client, keys, rate_per_s=5),
        max_wait_s=1.0,
        health=store,
    )
    with pytest.raises(ApiTransportError):
        list(fetch("tags"))
    assert store.is_failing()
    with pytest.raises(DestinationFailing):
        list(fetch("tags"))
    assert api.reads == 1
