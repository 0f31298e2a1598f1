"""producers.django with a real Django (sqlite in memory) and the private Redis."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

pytest.importorskip("django")

import django
from django.conf import settings

# Settings can be configured once per process; another module may have done it already.
if not settings.configured:
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["tests.producers.djangoapp.apps.DjangoAppConfig"],
        USE_TZ=True,
    )
    django.setup()

from django.db import connection, transaction
from django.db.models.signals import post_save
from django.test import override_settings

from producers import EnqueueError, InvalidContactEvent
from producers.django import (
    contact_changed_on_commit,
    get_producer,
    sync_on_save,
)
from tests._redis_server import free_port
from tests.producers.djangoapp.models import Customer
from worker.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def _customer_table() -> Iterator[None]:
    with connection.schema_editor() as editor:
        editor.create_model(Customer)
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(Customer)


@pytest.fixture(autouse=True)
def _no_customers() -> Iterator[None]:
    yield
    Customer.objects.all().delete()


@pytest.fixture
def contact_sync(redis_url: str, key_prefix: str) -> Iterator[None]:
    """settings.CONTACT_SYNC pointing at the private Redis and this test's prefix."""
    config = {"REDIS_URL": redis_url, "KEY_PREFIX": key_prefix, "SOURCE": "django:tests"}
    with override_settings(CONTACT_SYNC=config):
        yield


@pytest.fixture
def customer_sync(contact_sync: None) -> Iterator[None]:
    receiver = sync_on_save(
        Customer,
        first_name="first_name",
        last_name="last_name",
        fields={6: "birthday", "7": lambda customer: customer.plan.upper() or None},
        dispatch_uid="tests.customer_sync",
    )
    yield
    assert post_save.disconnect(receiver, sender=Customer, dispatch_uid="tests.customer_sync")


def events(client: redis.Redis, key_prefix: str) -> list[dict[str, Any]]:
    return [json.loads(entry[b"event"]) for _, entry in client.xrange(f"{key_prefix}:events")]


def test_save_in_atomic_enqueues_once_after_commit(customer_sync, redis_client, key_prefix):
    """A save inside atomic() enqueues exactly one event, and only once the block commits."""
    with transaction.atomic():
        Customer.objects.create(
            email="Jon@Example.com",
            first_name="John",
            last_name="Doe",
            birthday=dt.date(2008, 1, 20),
            plan="pro",
        )
        assert redis_client.exists(f"{key_prefix}:events") == 0
    (event,) = events(redis_client, key_prefix)
    assert event["source"] == "django:tests"
    assert event["contact"] == {
        "email": "jon@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "fieldValues": [{"field": "6", "value": "2008-01-20"}, {"field": "7", "value": "PRO"}],
    }


def test_rolled_back_atomic_enqueues_nothing(customer_sync, redis_client, key_prefix):
    """A save in an atomic() block that raises is rolled back and enqueues nothing."""

    def save_then_fail() -> None:
        with transaction.atomic():
            Customer.objects.create(email="jon@example.com", first_name="John")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_then_fail()
    assert not Customer.objects.exists()
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_rolled_back_savepoint_enqueues_nothing(customer_sync, redis_client, key_prefix):
    """Only changes whose savepoint survives are enqueued when the outer block commits."""

    def save_then_fail() -> None:
        with transaction.atomic():
            Customer.objects.create(email="dropped@example.com")
            raise RuntimeError("inner")

    with transaction.atomic():
        Customer.objects.create(email="kept@example.com")
        with pytest.raises(RuntimeError, match="inner"):
            save_then_fail()
    assert [e["contact"]["email"] for e in events(redis_client, key_prefix)] == ["kept@example.com"]


def test_autocommit_save_enqueues_at_once(customer_sync, redis_client, key_prefix):
    """Outside a transaction a save enqueues immediately; None attributes are left out."""
    Customer.objects.create(email="ann@example.com", first_name="", last_name=None)
    (event,) = events(redis_client, key_prefix)
    assert event["contact"] == {"email": "ann@example.com", "firstName": ""}


def test_invalid_email_raises_at_save_time(customer_sync, redis_client, key_prefix):
    """An invalid email raises InvalidContactEvent from save() and rolls the atomic block back."""
    with pytest.raises(InvalidContactEvent) as info, transaction.atomic():
        Customer.objects.create(email="not-an-email", first_name="John")
    assert "email" in info.value.messages
    assert not Customer.objects.exists()
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_missing_email_is_not_a_contact(customer_sync, redis_client, key_prefix):
    """A row without an email is saved and reports nothing."""
    Customer.objects.create(email="", first_name="Nobody")
    assert Customer.objects.count() == 1
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_raw_save_is_skipped(customer_sync, redis_client, key_prefix):
    """Raw saves, as when loading fixtures, enqueue nothing."""
    Customer(email="fixture@example.com").save_base(raw=True)
    assert Customer.objects.count() == 1
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_disconnected_receiver_stops_reporting(contact_sync, redis_client, key_prefix):
    """The returned receiver disconnects the hook."""
    receiver = sync_on_save(Customer)
    assert post_save.disconnect(receiver, sender=Customer)
    Customer.objects.create(email="jon@example.com")
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_on_commit_helper_returns_id_and_stamps_call_time(contact_sync, redis_client, key_prefix):
    """contact_changed_on_commit returns the event id now and stamps the time of the call."""
    with transaction.atomic():
        before = dt.datetime.now(dt.UTC)
        event_id = contact_changed_on_commit("jon@example.com", phone="7223224241")
        after = dt.datetime.now(dt.UTC)
        assert redis_client.exists(f"{key_prefix}:events") == 0
    (event,) = events(redis_client, key_prefix)
    assert event["id"] == event_id
    assert before <= dt.datetime.fromisoformat(event["occurred_at"]) <= after


def test_on_commit_helper_validates_immediately(contact_sync):
    """A bad call raises InvalidContactEvent at once, before any commit."""
    with transaction.atomic():
        with pytest.raises(InvalidContactEvent):
            contact_changed_on_commit("jon@example.com", fields={6: 42})
        assert connection.run_on_commit == []


def test_redis_down_at_commit_raises_after_commit(key_prefix):
    """If Redis is down at commit, EnqueueError propagates from the commit; the row stays."""
    config = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "KEY_PREFIX": key_prefix}

    def save_and_report() -> None:
        with transaction.atomic():
            Customer.objects.create(email="jon@example.com")
            contact_changed_on_commit("jon@example.com", first_name="John")

    with override_settings(CONTACT_SYNC=config), pytest.raises(EnqueueError):
        save_and_report()
    assert Customer.objects.count() == 1


def test_producer_is_cached_and_reset_on_setting_change(redis_url, key_prefix):
    """get_producer() is shared per process and rebuilt when CONTACT_SYNC changes."""
    with override_settings(CONTACT_SYNC={"REDIS_URL": redis_url, "KEY_PREFIX": key_prefix}):
        first = get_producer()
        assert get_producer() is first
        assert first.keys.prefix == key_prefix
        with override_settings(CONTACT_SYNC={"REDIS_URL": redis_url, "KEY_PREFIX": "other"}):
            assert get_producer().keys.prefix == "other"
        assert get_producer() is not first
        assert get_producer().keys.prefix == key_prefix


def test_missing_keys_fall_back_to_environment(monkeypatch, redis_url, key_prefix):
    """Keys left out of CONTACT_SYNC come from CONTACT_SYNC_REDIS_URL / _KEY_PREFIX."""
    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", redis_url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    with override_settings(CONTACT_SYNC={"SOURCE": "django:env"}):
        producer = get_producer()
        assert producer.keys.prefix == key_prefix
        assert producer.source == "django:env"
        assert producer.redis.ping()


def test_unknown_setting_key_is_a_config_error():
    """A misspelt CONTACT_SYNC key fails with a ConfigError that names it."""
    with (
        override_settings(CONTACT_SYNC={"REDIS_ULR": "redis://x"}),
        pytest.raises(ConfigError, match="REDIS_ULR"),
    ):
        get_producer()
