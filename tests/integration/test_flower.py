"""Flower against a real worker: its HTTP API shows our tasks, masks emails, never the token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fake_activecampaign import EmulatorClient
from producers import ContactSyncProducer
from tests._redis_server import free_port
from tests.integration._harness import TOKEN, WorkerPool, wait_until

USER, PASSWORD = "ops", "flower-test-password"
EMAILS = ("user.one@example.com", "user.two@example.com", "uma@example.com")
MASKED = "u***@example.com"
SYNC, PUMP, BULK = "contact_sync.sync_contact", "contact_sync.pump", "contact_sync.bulk_step"


class Flower:
    """One ``celery -A worker flower`` process on a free loopback port, stdout in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        command = [sys.executable, "-m", "celery", "-A", "worker", "flower"]
        command += ["--address=127.0.0.1", f"--port={self.port}", *args]
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def get(self, path: str, *, auth: tuple[str, str] | None = (USER, PASSWORD)) -> Any:
        return requests.get(f"{self.url}{path}", auth=auth, timeout=10)

    def wait_answering(self, timeout_s: float = 20.0) -> None:
        def answering() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"flower exited:\n{self.output()[-3000:]}")
            try:
                return self.get("/healthcheck").status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(answering, timeout_s=timeout_s, interval_s=0.1, message="flower answering")

    def output(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@pytest.fixture
def start_flower(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Flower]]:
    """Starts Flower processes with the workers' environment (token included) and stops them."""
    started: list[Flower] = []

    def start(*args: str, **env: str) -> Flower:
        flower = Flower({**worker_env, **env}, tmp_path / f"flower{len(started)}.log", *args)
        started.append(flower)
        flower.wait_answering()
        return flower

    yield start
    for flower in started:
        flower.stop()


def _tasks(flower: Flower) -> dict[str, dict[str, Any]]:
    response = flower.get("/api/tasks")
    response.raise_for_status()
    tasks: dict[str, dict[str, Any]] = response.json()
    return tasks


def _succeeded(tasks: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [task for task in tasks.values() if task["name"] == name and task["state"] == "SUCCESS"]


@pytest.mark.timeout(90)
def test_flower_shows_sync_tasks_with_masked_emails_and_no_token(
    workers: WorkerPool,
    start_flower: Callable[..., Flower],
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
) -> None:
    """Flower's API lists sync_contact as SUCCESS, shows emails masked, and never the token. (The pump runs off the pool, so it is no task; `contact-sync status` shows it.)"""
    flower = start_flower(f"--basic-auth={USER}:{PASSWORD}")
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2")
    # Flower only knows tasks whose events it received: wait until it sees the worker.
    wait_until(lambda: "w1@localhost" in flower.get("/api/workers?refresh=1").text, timeout_s=20)
    for email in EMAILS:
        producer.contact_changed(email, first_name="Una")

    def synced() -> dict[str, dict[str, Any]] | None:
        tasks = _tasks(flower)
        return tasks if len(_succeeded(tasks, SYNC)) >= len(EMAILS) else None

    tasks = wait_until(synced, timeout_s=30, interval_s=0.25, message="flower tasks")
    assert len(emulator_admin.contacts()) == len(EMAILS)

    syncs = _succeeded(tasks, SYNC)
    assert {task["args"] for task in syncs} == {repr([MASKED])}
    assert {task["result"] for task in syncs} == {repr("contact.synced")}
    assert all(task["kwargs"].startswith("{'lease': ") for task in syncs)
    assert not any(task["name"] == PUMP for task in tasks.values())

    bodies = {
        "/api/tasks": flower.get("/api/tasks").text,
        "/api/workers": flower.get("/api/workers?refresh=1").text,
        "/metrics": flower.get("/metrics").text,
    }
    assert "w1@localhost" in bodies["/api/workers"]
    assert 'task="contact_sync.sync_contact"' in bodies["/metrics"]
    for path, body in {**bodies, "flower output": flower.output()}.items():
        assert TOKEN not in body, f"the token leaked through {path}"
        for email in EMAILS:
            assert email not in body, f"{email} unmasked in {path}"


def test_flower_api_refuses_requests_without_basic_auth(
    start_flower: Callable[..., Flower],
) -> None:
    """With --basic-auth, the API answers 401 without credentials or with wrong ones."""
    flower = start_flower(f"--basic-auth={USER}:{PASSWORD}")
    assert flower.get("/api/tasks", auth=None).status_code == 401
    assert flower.get("/api/workers", auth=None).status_code == 401
    assert flower.get("/api/tasks", auth=(USER, "wrong")).status_code == 401
    assert flower.get("/api/tasks").status_code == 200


def test_flower_reads_basic_auth_from_the_environment(
    start_flower: Callable[..., Flower],
) -> None:
    """FLOWER_BASIC_AUTH (what compose and systemd use) protects the API like --basic-auth."""
    flower = start_flower(FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    assert flower.get("/api/tasks", auth=None).status_code == 401
    assert flower.get("/api/tasks").status_code == 200


def test_flower_metrics_are_served_without_auth(start_flower: Callable[..., Flower]) -> None:
    """Flower's /metrics ignores --basic-auth, which is why docs/flower.md says to firewall it."""
    flower = start_flower(f"--basic-auth={USER}:{PASSWORD}")
    response = flower.get("/metrics", auth=None)
    assert response.status_code == 200
    assert "flower_" in response.text


def test_flower_shows_bulk_import_batches_and_their_outcomes(
    workers: WorkerPool,
    start_flower: Callable[..., Flower],
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
) -> None:
    """In backlog mode each batch step is a contact_sync.bulk_step task in Flower, its result the step's outcome (bulk.built, bulk.submitted, bulk.completed); its arguments name the batch, never an email or the token."""
    flower = start_flower(f"--basic-auth={USER}:{PASSWORD}")
    # A small threshold, so that 60 emails make a backlog (the default is 300).
    workers.start(1, CONTACT_SYNC_DEBOUNCE_S="0.2", CONTACT_SYNC_BULK_MIN_BACKLOG="20")
    wait_until(lambda: "w1@localhost" in flower.get("/api/workers?refresh=1").text, timeout_s=20)
    emails = [f"backlog{n}@example.com" for n in range(60)]
    producer.send_many({"email": email, "firstName": "Bulk"} for email in emails)

    def completed() -> list[dict[str, Any]] | None:
        steps = _succeeded(_tasks(flower), BULK)
        return steps if any(step["result"] == repr("bulk.completed") for step in steps) else None

    steps = wait_until(completed, timeout_s=40, interval_s=0.25, message="a completed batch")
    results = {step["result"] for step in steps}
    assert {repr("bulk.built"), repr("bulk.submitted"), repr("bulk.completed")} <= results
    body = flower.get("/api/tasks").text
    assert TOKEN not in body
    assert not any(email in body for email in emails)
    assert emulator_admin.bulk_stats()["batches_completed"] >= 1
