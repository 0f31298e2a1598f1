"""examples/flask_app: the signup route, driven by Flask's test client, puts the event on the stream."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

pytest.importorskip("flask")

from flask import Flask

from tests._redis_server import free_port

APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "flask_app" / "app.py"


def load_example() -> ModuleType:
    # Loaded by path under its own name: "app" on sys.path could shadow or be shadowed.
    spec = importlib.util.spec_from_file_location("contact_sync_flask_example", APP_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app(redis_url: str, key_prefix: str) -> Flask:
    example = load_example()
    flask_app: Flask = example.create_app(
        {"CONTACT_SYNC_REDIS_URL": redis_url, "CONTACT_SYNC_KEY_PREFIX": key_prefix}
    )
    return flask_app


def events(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(entry[b"event"]) for _, entry in client.xrange(f"{prefix}:events")]


def test_signup_puts_the_contact_on_the_stream(app, redis_client, key_prefix):
    """POST /signup with JSON answers 202; the v2 event carries the contact, tag, list and company."""
    response = app.test_client().post(
        "/signup",
        json={
            "email": "Jon@Example.com",
            "first_name": "John",
            "birthday": "2008-01-20",
            "company": "Acme Inc",
            "newsletter": True,
        },
    )
    assert response.status_code == 202
    (event,) = events(redis_client, key_prefix)
    assert event["id"] == response.get_json()["event_id"]
    assert (event["v"], event["source"]) == (2, "flask:example")
    assert "destination" not in event  # the default ActiveCampaign account
    assert event["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}],
        "tags": {"trial": True},
        "lists": {"Newsletter": "subscribed"},
        "account": "Acme Inc",
    }


def test_signup_accepts_a_form_and_leaves_empty_fields_out(app, redis_client, key_prefix):
    """A form post works too; empty fields, company included, are "unchanged", not ""."""
    response = app.test_client().post(
        "/signup",
        data={"email": "ann@example.com", "first_name": "", "last_name": "Lee", "company": ""},
    )
    assert response.status_code == 202
    (event,) = events(redis_client, key_prefix)
    assert event["contact"] == {
        "email": "ann@example.com",
        "lastName": "Lee",
        "tags": {"trial": True},
    }


def test_only_a_ticked_newsletter_box_subscribes(app, redis_client, key_prefix):
    """A ticked form checkbox subscribes to "Newsletter"; an unticked one changes no list."""
    client = app.test_client()
    client.post("/signup", data={"email": "ann@example.com", "newsletter": "on"})
    client.post("/signup", json={"email": "bob@example.com", "newsletter": False})
    ann, bob = (event["contact"] for event in events(redis_client, key_prefix))
    assert ann["lists"] == {"Newsletter": "subscribed"}
    assert "lists" not in bob


def test_invalid_signup_is_a_400_with_the_messages(app, redis_client, key_prefix):
    """The InvalidContactEvent handler answers 400 with per-field messages; nothing is enqueued."""
    response = app.test_client().post("/signup", json={"email": "nope", "birthday": "x" * 20000})
    assert response.status_code == 400
    assert response.get_json() == {
        "errors": {
            "email": ["Not a valid email address."],
            "fields": {"6": {"value": ["Longer than maximum length 16384."]}},
        }
    }
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_partner_signup_goes_to_the_partners_destination(app, redis_client, key_prefix):
    """POST /partners puts "destination": "partners" in the envelope; /signup does not."""
    client = app.test_client()
    response = client.post(
        "/partners",
        json={"email": "Pat@Example.com", "first_name": "Pat", "company": "Resell Co"},
    )
    assert response.status_code == 202
    assert client.post("/signup", data={"email": "ann@example.com"}).status_code == 202
    partner, customer = events(redis_client, key_prefix)
    assert partner["id"] == response.get_json()["event_id"]
    assert (partner["v"], partner["source"], partner["destination"]) == (
        2,
        "flask:example",
        "partners",
    )
    assert partner["contact"] == {
        "email": "pat@example.com",
        "firstName": "Pat",
        "tags": {"partner": True},
        "account": "Resell Co",
    }
    assert customer["contact"]["email"] == "ann@example.com"
    assert "destination" not in customer


def test_invalid_partner_signup_is_a_400(app, redis_client, key_prefix):
    """The partners route shares the 400 handler: a bad email enqueues nothing."""
    response = app.test_client().post("/partners", data={"email": "nope"})
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"email": ["Not a valid email address."]}}
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_unreachable_redis_is_a_503(key_prefix):
    """When Redis cannot be reached the route answers 503 instead of crashing."""
    app = load_example().create_app(
        {
            "CONTACT_SYNC_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "CONTACT_SYNC_KEY_PREFIX": key_prefix,
        }
    )
    response = app.test_client().post("/signup", json={"email": "jon@example.com"})
    assert response.status_code == 503
