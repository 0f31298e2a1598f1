"""producers.django with a real Django (sqlite in memory) and the private Redis."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
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


def test_min_replicas_comes_from_the_setting_or_the_environment(monkeypatch, redis_url, key_prefix):
    """MIN_REPLICAS and WAIT_TIMEOUT_MS in CONTACT_SYNC win; left out, the environment's."""
    base = {"REDIS_URL": redis_url, "KEY_PREFIX": key_prefix}
    with override_settings(CONTACT_SYNC={**base, "MIN_REPLICAS": 1, "WAIT_TIMEOUT_MS": 250}):
        producer = get_producer()
        assert (producer.min_replicas, producer.wait_timeout_ms) == (1, 250)
    monkeypatch.setenv("CONTACT_SYNC_PRODUCER_MIN_REPLICAS", "2")
    with override_settings(CONTACT_SYNC=base):
        assert get_producer().min_replicas == 2


def test_unknown_setting_key_is_a_config_error():
    """A misspelt CONTACT_SYNC key fails with a ConfigError that names it."""
    with (
        override_settings(CONTACT_SYNC={"REDIS_ULR": "redis://x"}),
        pytest.raises(ConfigError, match="REDIS_ULR"),
    ):
        get_producer()


# -- tags, lists and the account (issue 10) --------------------------------------------------


@pytest.fixture
def hook(contact_sync: None) -> Iterator[Callable[..., None]]:
    """hook(**options) runs sync_on_save(Customer, **options) for this test only."""
    receivers: list[Callable[..., None]] = []

    def connect(**options: Any) -> None:
        receivers.append(sync_on_save(Customer, **options))

    yield connect
    for receiver in receivers:
        assert post_save.disconnect(receiver, sender=Customer)


@pytest.fixture
def footprint_sync(hook: Callable[..., None]) -> None:
    hook(
        fields={"%BIRTHDAY%": "birthday", "Plan": lambda customer: customer.plan or None},
        tags={"trial": "is_trial"},
        lists={"Newsletter": "wants_newsletter"},
        account="company",
    )


def test_model_attributes_feed_fields_tags_lists_and_account(
    footprint_sync, redis_client, key_prefix
):
    """Truthy attributes add the tag and subscribe the list; fields go by perstag and title."""
    with transaction.atomic():
        Customer.objects.create(
            email="jon@example.com",
            birthday=dt.date(2008, 1, 20),
            plan="pro",
            is_trial=True,
            wants_newsletter=True,
            company="Acme Inc",
        )
    (event,) = events(redis_client, key_prefix)
    assert event["v"] == 2
    assert event["contact"] == {
        "email": "jon@example.com",
        "fieldValues": [
            {"field": "%BIRTHDAY%", "value": "2008-01-20"},
            {"field": "Plan", "value": "pro"},
        ],
        "tags": {"trial": True},
        "lists": {"Newsletter": "subscribed"},
        "account": "Acme Inc",
    }


def test_falsy_attributes_remove_the_tag_and_unsubscribe(footprint_sync, redis_client, key_prefix):
    """A later save with the attributes cleared removes the tag and unsubscribes the list."""
    customer = Customer.objects.create(
        email="jon@example.com", is_trial=True, wants_newsletter=True
    )
    customer.is_trial = False
    customer.wants_newsletter = False
    customer.save()
    first, second = (event["contact"] for event in events(redis_client, key_prefix))
    assert (first["tags"], first["lists"]) == ({"trial": True}, {"Newsletter": "subscribed"})
    assert (second["tags"], second["lists"]) == ({"trial": False}, {"Newsletter": "unsubscribed"})


def test_none_attributes_leave_list_and_account_unchanged(footprint_sync, redis_client, key_prefix):
    """A list or account attribute that is None is left out of the event ("unchanged")."""
    Customer.objects.create(email="jon@example.com", wants_newsletter=None, company=None)
    (event,) = events(redis_client, key_prefix)
    assert event["contact"] == {
        "email": "jon@example.com",
        "tags": {"trial": False},
    }


def test_blank_company_unlinks_the_account(footprint_sync, redis_client, key_prefix):
    """A company of "" is sent as account "", which unlinks the contact from its company."""
    Customer.objects.create(email="jon@example.com", company="")
    (event,) = events(redis_client, key_prefix)
    assert event["contact"]["account"] == ""


@pytest.mark.parametrize(
    ("value", "added"),
    [(True, True), (1, True), ("yes", True), (False, False), (0, False), ("", False)],
)
def test_tag_follows_the_truth_of_its_source(hook, redis_client, key_prefix, value, added):
    """A tag source's truthy value adds the tag, and its falsy value removes it."""
    hook(tags={"vip": lambda customer: value})
    Customer.objects.create(email="jon@example.com")
    (event,) = events(redis_client, key_prefix)
    assert event["contact"]["tags"] == {"vip": added}


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (True, "subscribed"),
        (1, "subscribed"),
        ("subscribed", "subscribed"),
        ("unsubscribed", "unsubscribed"),
        (False, "unsubscribed"),
        (0, "unsubscribed"),
        ("", "unsubscribed"),
    ],
)
def test_list_follows_the_truth_of_its_source_or_its_status(
    hook, redis_client, key_prefix, value, status
):
    """A list source subscribes when truthy, unsubscribes when falsy, and passes a status as is."""
    hook(lists={3: lambda customer: value})
    Customer.objects.create(email="jon@example.com")
    (event,) = events(redis_client, key_prefix)
    assert event["contact"]["lists"] == {"3": status}


def test_callable_returning_none_leaves_the_tag_alone(hook, redis_client, key_prefix):
    """A tag source that returns None sends nothing for the tag: add-only tags are possible."""
    hook(tags={"ever-paid": lambda customer: customer.plan == "pro" or None})
    Customer.objects.create(email="free@example.com", plan="free")
    Customer.objects.create(email="pro@example.com", plan="pro")
    free, pro = (event["contact"] for event in events(redis_client, key_prefix))
    assert "tags" not in free
    assert pro["tags"] == {"ever-paid": True}


def test_invalid_account_raises_at_save_time(hook, redis_client, key_prefix):
    """An account source that yields a non-string raises InvalidContactEvent from save()."""
    hook(account=lambda customer: 42)
    with pytest.raises(InvalidContactEvent) as info, transaction.atomic():
        Customer.objects.create(email="jon@example.com")
    assert "account" in info.value.messages
    assert not Customer.objects.exists()
    assert redis_client.exists(f"{key_prefix}:events") == 0


@pytest.mark.parametrize("option", ["fields", "tags", "lists"])
def test_constant_source_is_refused_at_registration(contact_sync, option):
    """A source that is neither an attribute name nor a callable is a TypeError at once."""
    with pytest.raises(TypeError, match=r"'trial' maps to True.*lambda obj: True"):
        sync_on_save(Customer, **{option: {"trial": True}})


def test_footprint_of_a_rolled_back_save_is_not_written(footprint_sync, redis_client, key_prefix):
    """Tags, lists and the account follow the transaction: a rollback writes nothing."""

    def save_then_fail() -> None:
        with transaction.atomic():
            Customer.objects.create(email="jon@example.com", is_trial=True, company="Acme")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_then_fail()
    assert redis_client.exists(f"{key_prefix}:events") == 0


def test_on_commit_helper_passes_tags_lists_and_account(contact_sync, redis_client, key_prefix):
    """contact_changed_on_commit writes fields by any reference, tags, lists and account on commit."""
    with transaction.atomic():
        contact_changed_on_commit(
            "jon@example.com",
            fields={6: "x", "%SHIRT_SIZE%": "L", "Company size": "10-50"},
            tags={"trial": True, "churned": False},
            lists={"Newsletter": "subscribed", 3: "unsubscribed"},
            account="Acme Inc",
        )
        assert redis_client.exists(f"{key_prefix}:events") == 0
    (event,) = events(redis_client, key_prefix)
    assert event["contact"] == {
        "email": "jon@example.com",
        "fieldValues": [
            {"field": "6", "value": "x"},
            {"field": "%SHIRT_SIZE%", "value": "L"},
            {"field": "Company size", "value": "10-50"},
        ],
        "tags": {"trial": True, "churned": False},
        "lists": {"Newsletter": "subscribed", "3": "unsubscribed"},
        "account": "Acme Inc",
    }


def test_on_commit_helper_sends_empty_account_to_unlink(contact_sync, redis_client, key_prefix):
    """account="" is written (it unlinks the company); account=None writes no account."""
    contact_changed_on_commit("a@example.com", account="")
    contact_changed_on_commit("b@example.com", account=None)
    assert [event["contact"] for event in events(redis_client, key_prefix)] == [
        {"email": "a@example.com", "account": ""},
        {"email": "b@example.com"},
    ]


def test_on_commit_helper_refuses_bad_tags_at_once(contact_sync):
    """A bad tag or list raises InvalidContactEvent naming it, and registers no callback."""
    with transaction.atomic():
        with pytest.raises(InvalidContactEvent) as info:
            contact_changed_on_commit(
                "jon@example.com", tags={"trial": "yes"}, lists={"News": "active"}
            )
        assert set(info.value.messages) == {"tags", "lists"}
        assert connection.run_on_commit == []


# -- destinations: which ActiveCampaign account an event is for ------------------------------


def test_on_commit_helper_names_the_destination(contact_sync, redis_client, key_prefix):
    """destination= is written in the envelope on commit; left out, the event has no key."""
    with transaction.atomic():
        contact_changed_on_commit("a@example.com", first_name="Ann", destination="eu-2")
        contact_changed_on_commit("b@example.com", first_name="Bob")
        assert redis_client.exists(f"{key_prefix}:events") == 0
    eu, default = events(redis_client, key_prefix)
    assert (eu["destination"], eu["contact"]) == (
        "eu-2",
        {"email": "a@example.com", "firstName": "Ann"},
    )
    assert "destination" not in default


def test_on_commit_helper_refuses_a_malformed_destination_at_once(contact_sync):
    """A malformed name raises InvalidContactEvent at the call and registers no callback."""
    with transaction.atomic():
        with pytest.raises(InvalidContactEvent) as info:
            contact_changed_on_commit("jon@example.com", destination="eu west")
        assert list(info.value.messages) == ["destination"]
        assert connection.run_on_commit == []


@pytest.fixture
def eu_by_default(redis_url: str, key_prefix: str) -> Iterator[None]:
    """CONTACT_SYNC with DESTINATION "eu"."""
    config = {"REDIS_URL": redis_url, "KEY_PREFIX": key_prefix, "DESTINATION": "eu"}
    with override_settings(CONTACT_SYNC=config):
        yield


def test_setting_names_the_destination_of_calls_that_name_none(
    eu_by_default, redis_client, key_prefix
):
    """CONTACT_SYNC["DESTINATION"] applies when a call names none; a call's own name wins."""
    contact_changed_on_commit("a@example.com")
    contact_changed_on_commit("b@example.com", destination="us")
    contact_changed_on_commit("c@example.com", destination="default")
    a, b, c = events(redis_client, key_prefix)
    assert a["destination"] == "eu"
    assert b["destination"] == "us"
    assert "destination" not in c  # named explicitly: the default account


@pytest.mark.parametrize("name", ["", "eu west", 42])
def test_malformed_destination_setting_is_a_config_error(redis_url, key_prefix, name):
    """A DESTINATION that is not a destination name fails with a ConfigError naming it."""
    config = {"REDIS_URL": redis_url, "KEY_PREFIX": key_prefix, "DESTINATION": name}
    with (
        override_settings(CONTACT_SYNC=config),
        pytest.raises(ConfigError, match=r"DESTINATION.*destination name"),
    ):
        get_producer()


def test_sync_on_save_sends_every_save_to_its_destination(hook, redis_client, key_prefix):
    """sync_on_save(destination="billing"): a string is the destination's name."""
    hook(first_name="first_name", destination="billing")
    Customer.objects.create(email="jon@example.com", first_name="John")
    (event,) = events(redis_client, key_prefix)
    assert event["destination"] == "billing"
    assert event["contact"] == {"email": "jon@example.com", "firstName": "John"}


def test_sync_on_save_destination_from_the_instance(eu_by_default, redis_client, key_prefix):
    """A callable computes the destination per instance; None falls back to the setting's."""
    receiver = sync_on_save(Customer, destination=lambda customer: customer.plan or None)
    try:
        Customer.objects.create(email="pro@example.com", plan="pro")
        Customer.objects.create(email="free@example.com", plan="")
    finally:
        assert post_save.disconnect(receiver, sender=Customer)
    pro, free = events(redis_client, key_prefix)
    assert (pro["contact"]["email"], pro["destination"]) == ("pro@example.com", "pro")
    assert (free["contact"]["email"], free["destination"]) == ("free@example.com", "eu")


def test_sync_on_save_without_destination_uses_the_setting(eu_by_default, redis_client, key_prefix):
    """A hook without destination= sends to CONTACT_SYNC["DESTINATION"]."""
    receiver = sync_on_save(Customer)
    try:
        Customer.objects.create(email="jon@example.com")
    finally:
        assert post_save.disconnect(receiver, sender=Customer)
    (event,) = events(redis_client, key_prefix)
    assert event["destination"] == "eu"


@pytest.mark.parametrize("name", ["", "eu west", "-eu", 42])
def test_sync_on_save_refuses_a_malformed_destination_at_registration(contact_sync, name):
    """A fixed destination that is not a name is a ValueError at once, not in every save()."""
    with pytest.raises(ValueError, match="destination name"):
        sync_on_save(Customer, destination=name)


def test_malformed_destination_from_a_callable_raises_at_save_time(hook, redis_client, key_prefix):
    """A callable that yields a malformed name raises InvalidContactEvent from save()."""
    hook(destination=lambda customer: "not/a/name")
    with pytest.raises(InvalidContactEvent) as info, transaction.atomic():
        Customer.objects.create(email="jon@example.com")
    assert "destination" in info.value.messages
    assert not Customer.objects.exists()
    assert redis_client.exists(f"{key_prefix}:events") == 0
