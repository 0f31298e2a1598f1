"""producers.flask with a real Flask app (test client) and the private Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

pytest.importorskip("flask")

from flask import Flask, request

from producers import InvalidContactEvent
from producers.flask import ContactSync
from worker.errors import ConfigError

# Module level, as in an app-factory project: one extension object, any number of apps.
contact_sync = ContactSync()


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    contact_sync.init_app(app)

    @app.post("/signup")
    def signup() -> tuple[dict[str, Any], int]:
        form = request.get_json()
        event_id = contact_sync.contact_changed(
            form["email"],
            first_name=form.get("first_name"),
            fields={6: form["birthday"]} if "birthday" in form else None,
        )
        return {"event_id": event_id}, 202

    @app.errorhandler(InvalidContactEvent)
    def invalid_contact(exc: InvalidContactEvent) -> tuple[dict[str, Any], int]:
        return {"errors": exc.messages}, 400

    return app


@pytest.fixture
def app(redis_url: str, key_prefix: str) -> Flask:
    return create_app(
        {
            "CONTACT_SYNC_REDIS_URL": redis_url,
            "CONTACT_SYNC_KEY_PREFIX": key_prefix,
            "CONTACT_SYNC_SOURCE": "flask:tests",
        }
    )


def events(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(entry[b"event"]) for _, entry in client.xrange(f"{prefix}:events")]


def test_signup_enqueues_the_posted_contact(app, redis_client, key_prefix):
    """A POST to /signup puts one event with the posted data on the stream."""
    response = app.test_client().post(
        "/signup", json={"email": "Jon@Example.com", "first_name": "John", "birthday": "2008-01-20"}
    )
    assert response.status_code == 202
    (event,) = events(redis_client, key_prefix)
    assert event["id"] == response.get_json()["event_id"]
    assert event["source"] == "flask:tests"
    assert event["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}],
    }


def test_invalid_email_is_a_400_with_field_messages(app, redis_client, key_prefix):
    """An invalid email makes the route answer 400 with the per-field messages; nothing is sent."""
    response = app.test_client().post("/signup", json={"email": "nope", "first_name": "John"})
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"email": ["Not a valid email address."]}}
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_producer_is_stored_per_app(redis_url, key_prefix, redis_client):
    """Each app built by the factory gets its own producer in app.extensions."""
    first = create_app({"CONTACT_SYNC_REDIS_URL": redis_url, "CONTACT_SYNC_KEY_PREFIX": key_prefix})
    second = create_app(
        {"CONTACT_SYNC_REDIS_URL": redis_url, "CONTACT_SYNC_KEY_PREFIX": f"{key_prefix}:second"}
    )
    with first.app_context():
        assert contact_sync.producer is first.extensions["contact_sync"]
        assert contact_sync.producer.keys.prefix == key_prefix
        assert contact_sync.producer.source is None
    with second.app_context():
        assert contact_sync.send_many([{"email": "a@example.com"}, {"email": "b@example.com"}]) == 2
    assert redis_client.exists(f"{key_prefix}:events") == 0
    assert len(events(redis_client, f"{key_prefix}:second")) == 2


def test_constructor_with_app_initialises_it(redis_url, key_prefix):
    """ContactSync(app) is the same as ContactSync().init_app(app)."""
    app = Flask(__name__)
    app.config.update(CONTACT_SYNC_REDIS_URL=redis_url, CONTACT_SYNC_KEY_PREFIX=key_prefix)
    ext = ContactSync(app)
    with app.app_context():
        assert ext.producer.keys.prefix == key_prefix


def test_missing_config_falls_back_to_environment(monkeypatch, redis_url, key_prefix):
    """Config keys left out come from CONTACT_SYNC_REDIS_URL and CONTACT_SYNC_KEY_PREFIX."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    app = Flask(__name__)
    ext = ContactSync(app)
    with app.app_context():
        assert ext.producer.keys.prefix == key_prefix
        assert ext.producer.redis.ping()


def test_uninitialised_app_is_a_clear_error():
    """Using the extension in an app that never called init_app raises a RuntimeError."""
    app = Flask(__name__)
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        _ = ContactSync().producer


def test_contact_changed_passes_tags_lists_and_account(app, redis_client, key_prefix):
    """The extension's contact_changed writes fields by perstag or title, tags, lists and account."""
    with app.app_context():
        event_id = contact_sync.contact_changed(
            "jon@example.com",
            fields={"%shirt_size%": "L", "Company size": "10-50"},
            tags={"churned": False},
            lists={3: "unsubscribed"},
            account="",
        )
    (event,) = events(redis_client, key_prefix)
    assert (event["id"], event["v"]) == (event_id, 2)
    assert event["contact"] == {
        "email": "jon@example.com",
        "fieldValues": [
            {"field": "%SHIRT_SIZE%", "value": "L"},
            {"field": "Company size", "value": "10-50"},
        ],
        "tags": {"churned": False},
        "lists": {"3": "unsubscribed"},
        "account": "",
    }


def test_send_many_passes_tags_lists_and_account(app, redis_client, key_prefix):
    """The extension's send_many takes dicts with tags, lists and account."""
    with app.app_context():
        sent = contact_sync.send_many(
            [
                {
                    "email": "ann@example.com",
                    "tags": {"vip": True},
                    "lists": {"News": "subscribed"},
                },
                {"email": "bob@example.com", "account": "Acme Inc"},
            ]
        )
    assert sent == 2
    assert [event["contact"] for event in events(redis_client, key_prefix)] == [
        {"email": "ann@example.com", "tags": {"vip": True}, "lists": {"News": "subscribed"}},
        {"email": "bob@example.com", "account": "Acme Inc"},
    ]


def test_bad_tags_and_lists_raise_before_writing(app, redis_client, key_prefix):
    """A bad tag or list raises InvalidContactEvent naming each, and nothing is written."""
    with app.app_context(), pytest.raises(InvalidContactEvent) as info:
        contact_sync.contact_changed(
            "jon@example.com", tags={"trial": "yes"}, lists={"News": "active"}
        )
    assert info.value.messages == {
        "tags": {"trial": ["Must be true (add the tag) or false (remove it)."]},
        "lists": {"News": ['Must be "subscribed" or "unsubscribed".']},
    }
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_min_replicas_comes_from_the_app_config_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str
) -> None:
    """CONTACT_SYNC_PRODUCER_MIN_REPLICAS / _WAIT_TIMEOUT_MS in app.config win; left out, the environment's."""
    base = {"CONTACT_SYNC_REDIS_URL": redis_url, "CONTACT_SYNC_KEY_PREFIX": key_prefix}
    app = create_app(
        {
            **base,
            "CONTACT_SYNC_PRODUCER_MIN_REPLICAS": 1,
            "CONTACT_SYNC_PRODUCER_WAIT_TIMEOUT_MS": 250,
        }
    )
    producer = app.extensions["contact_sync"]
    assert (producer.min_replicas, producer.wait_timeout_ms) == (1, 250)
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "2")
    assert create_app(base).extensions["contact_sync"].min_replicas == 2


# -- destinations: which ActiveCampaign account an event is for ------------------------------


def test_contact_changed_names_the_destination(app, redis_client, key_prefix):
    """destination= is written in the envelope; left out, the event has no destination key."""
    with app.app_context():
        contact_sync.contact_changed("a@example.com", first_name="Ann", destination="eu-2")
        contact_sync.contact_changed("b@example.com", first_name="Bob")
    eu, default = events(redis_client, key_prefix)
    assert (eu["destination"], eu["contact"]) == (
        "eu-2",
        {"email": "a@example.com", "firstName": "Ann"},
    )
    assert "destination" not in default


def test_send_many_passes_each_dicts_destination(app, redis_client, key_prefix):
    """A dict's "destination" key reaches its own event; dicts without one go to default."""
    with app.app_context():
        sent = contact_sync.send_many(
            [{"email": "a@example.com", "destination": "eu"}, {"email": "b@example.com"}]
        )
    assert sent == 2
    a, b = events(redis_client, key_prefix)
    assert (a["contact"]["email"], a["destination"]) == ("a@example.com", "eu")
    assert (b["contact"]["email"], "destination" in b) == ("b@example.com", False)


@pytest.fixture
def eu_app(redis_url: str, key_prefix: str) -> Flask:
    """An app whose CONTACT_SYNC_DESTINATION is "eu"."""
    return create_app(
        {
            "CONTACT_SYNC_REDIS_URL": redis_url,
            "CONTACT_SYNC_KEY_PREFIX": key_prefix,
            "CONTACT_SYNC_DESTINATION": "eu",
        }
    )


def test_config_names_the_destination_of_calls_that_name_none(eu_app, redis_client, key_prefix):
    """CONTACT_SYNC_DESTINATION applies when a call names none; a call's own name wins."""
    with eu_app.app_context():
        contact_sync.contact_changed("a@example.com")
        contact_sync.contact_changed("b@example.com", destination="us")
        contact_sync.contact_changed("c@example.com", destination="default")
    a, b, c = events(redis_client, key_prefix)
    assert a["destination"] == "eu"
    assert b["destination"] == "us"
    assert "destination" not in c  # named explicitly: the default account


def test_send_many_destination_keyword_and_config(eu_app, redis_client, key_prefix):
    """send_many: a dict's own destination wins, then the keyword, then the app's config."""
    contacts = [
        {"email": "own@example.com", "destination": "us"},
        {"email": "unset@example.com", "destination": None},
        {"email": "none@example.com"},
    ]
    with eu_app.app_context():
        assert contact_sync.send_many(contacts) == 3
        assert contact_sync.send_many(contacts, destination="apac") == 3
    assert [
        (e["contact"]["email"], e["destination"]) for e in events(redis_client, key_prefix)
    ] == [
        ("own@example.com", "us"),
        ("unset@example.com", "eu"),
        ("none@example.com", "eu"),
        ("own@example.com", "us"),
        ("unset@example.com", "apac"),
        ("none@example.com", "apac"),
    ]
    # The caller's dicts are left as they were.
    assert contacts[1] == {"email": "unset@example.com", "destination": None}
    assert "destination" not in contacts[2]


def test_send_many_refuses_a_malformed_destination_before_writing(app, redis_client, key_prefix):
    """A malformed name in any dict raises InvalidContactEvent keyed by its index; nothing is written."""
    with app.app_context(), pytest.raises(InvalidContactEvent) as info:
        contact_sync.send_many(
            [{"email": "a@example.com"}, {"email": "b@example.com", "destination": "eu west"}]
        )
    assert list(info.value.messages) == ["1"]
    assert "destination" in info.value.messages["1"]
    assert redis_client.exists(f"{key_prefix}:events") == 0


@pytest.mark.parametrize("name", ["", "eu west", 42])
def test_malformed_destination_config_is_a_config_error(redis_url, key_prefix, name):
    """init_app refuses a CONTACT_SYNC_DESTINATION that is not a destination name."""
    with pytest.raises(ConfigError, match=r"CONTACT_SYNC_DESTINATION.*destination name"):
        create_app(
            {
                "CONTACT_SYNC_REDIS_URL": redis_url,
                "CONTACT_SYNC_KEY_PREFIX": key_prefix,
                "CONTACT_SYNC_DESTINATION": name,
            }
        )
