"""`contact-sync enqueue --destination`: the event names the ActiveCampaign account it is for."""

from __future__ import annotations

import json

import pytest
import redis

from worker.cli import main
from worker.schema import decode_event

EMAIL = "jon@example.com"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str) -> None:
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def events(client: redis.Redis, prefix: str) -> list[bytes]:
    return [entry[b"event"] for _, entry in client.xrange(f"{prefix}:events")]


def test_destination_is_written_on_the_event(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str
) -> None:
    """--destination NAME puts "destination": NAME in the envelope; the worker decodes it."""
    code, out, err = run(
        capsys, "enqueue", "--email", EMAIL, "--first-name", "Jon", "--destination", "eu-2"
    )

    assert code == 0, err
    (raw,) = events(redis_client, key_prefix)
    assert json.loads(raw)["destination"] == "eu-2"
    event = decode_event(raw)
    assert (event.id, event.destination) == (out.strip(), "eu-2")
    assert event.attributes == {"firstName": "Jon"}


@pytest.mark.parametrize("argv", [[], ["--destination", "default"]])
def test_the_default_destination_is_left_off_the_wire(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    key_prefix: str,
    argv: list[str],
) -> None:
    """Without --destination, or with the name default, the event has no destination key."""
    assert run(capsys, "enqueue", "--email", EMAIL, *argv)[0] == 0

    (raw,) = events(redis_client, key_prefix)
    assert "destination" not in json.loads(raw)
    assert decode_event(raw).destination == "default"


@pytest.mark.parametrize("name", ["", "eu west", "-eu", "x" * 65, "eu/2"])
def test_a_malformed_destination_exits_2_and_enqueues_nothing(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, key_prefix: str, name: str
) -> None:
    """A name the schema refuses prints the producer's message for it, exits 2, writes nothing."""
    code, out, err = run(capsys, "enqueue", "--email", EMAIL, "--destination", name)

    assert code == 2
    assert out == ""
    assert err.startswith("contact-sync: invalid contact event, nothing was enqueued:")
    assert "  destination: Must be a destination name" in err
    assert events(redis_client, key_prefix) == []


def test_help_describes_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`enqueue --help` lists --destination NAME."""
    code, out, _ = run(capsys, "enqueue", "--help")
    assert code == 0
    assert "--destination NAME" in out
