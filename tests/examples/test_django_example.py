"""examples/django_project: a Customer saved through the view puts its contact on the stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

pytest.importorskip("django")

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "examples" / "django_project"
DRIVER = Path(__file__).with_name("_drive_django_example.py")


def example_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DJANGO_")}
    return env | {
        "CONTACT_SYNC_REDIS_URL": redis_url,
        "CONTACT_SYNC_KEY_PREFIX": key_prefix,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(REPO)]),
    }


def post_customers(env: dict[str, str], *forms: dict[str, str]) -> list[dict[str, Any]]:
    """POST each form to /customers/ in a fresh Django process; the responses."""
    return post(env, *(("/customers/", form) for form in forms))


def post(env: dict[str, str], *posts: tuple[str, dict[str, str]]) -> list[dict[str, Any]]:
    """POST each (path, form) in a fresh Django process; the responses."""
    done = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(posts)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def events(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(entry[b"event"]) for _, entry in client.xrange(f"{prefix}:events")]


def test_creating_a_customer_enqueues_its_contact(redis_url, key_prefix, redis_client):
    """POST /customers/ saves a Customer; on commit its contact, tag, list and company go out."""
    form = {
        "email": "Jon@Example.com",
        "first_name": "John",
        "last_name": "Doe",
        "birthday": "2008-01-20",
        "company": "Acme Inc",
        "wants_newsletter": "on",
    }
    (result,) = post_customers(example_env(redis_url, key_prefix), form)
    assert result["status"] == 201, result
    (event,) = events(redis_client, key_prefix)
    assert (event["v"], event["source"]) == (2, "django:example")
    assert "destination" not in event  # the default ActiveCampaign account
    assert event["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}],
        "tags": {"trial": True},
        "lists": {"Newsletter": "subscribed"},
        "account": "Acme Inc",
    }


def test_a_refused_customer_enqueues_nothing(redis_url, key_prefix, redis_client):
    """Form errors (a bad email, an email already taken) are 400s that enqueue nothing."""
    env = example_env(redis_url, key_prefix)
    results = post_customers(
        env,
        {"email": "not-an-email", "first_name": "X"},
        {"email": "ann@example.com"},
        {"email": "ann@example.com", "first_name": "Again"},
    )
    assert [result["status"] for result in results] == [400, 201, 400]
    assert "email" in results[0]["body"]["errors"]
    # Saved without a birthday: the custom field is left out. The blank names and company
    # are "" values (the company's unlinks), and the unticked box unsubscribes.
    (event,) = events(redis_client, key_prefix)
    assert event["contact"] == {
        "email": "ann@example.com",
        "firstName": "",
        "lastName": "",
        "tags": {"trial": True},
        "lists": {"Newsletter": "unsubscribed"},
        "account": "",
    }


def test_a_partner_signup_goes_to_the_partners_destination(redis_url, key_prefix, redis_client):
    """POST /partners/ enqueues on commit, with "destination": "partners" in the envelope;
    a customer created in the same process still goes to the default account."""
    results = post(
        example_env(redis_url, key_prefix),
        ("/partners/", {"email": "Pat@Example.com", "first_name": "Pat", "company": "Resell Co"}),
        ("/partners/", {"email": "not-an-email"}),
        ("/customers/", {"email": "ann@example.com"}),
    )
    assert [result["status"] for result in results] == [202, 400, 201]
    partner, customer = events(redis_client, key_prefix)
    assert partner["id"] == results[0]["body"]["event_id"]
    assert (partner["v"], partner["source"], partner["destination"]) == (
        2,
        "django:example",
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


@pytest.mark.parametrize(
    "command", [["check"], ["makemigrations", "--check", "--dry-run", "accounts"]]
)
def test_manage_py_runs(redis_url, key_prefix, tmp_path, command):
    """The example's manage.py works, and its migrations match its models."""
    env = example_env(redis_url, key_prefix) | {"DJANGO_SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
