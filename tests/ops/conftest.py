"""Fixtures for the emulator tests: started emulators, an API session and an admin client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.ops.helpers import ApiSession


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., FakeActiveCampaign]]:
    """Starts emulators on free ports and stops them all after the test."""
    started: list[FakeActiveCampaign] = []

    def start(**kwargs: Any) -> FakeActiveCampaign:
        emulator = FakeActiveCampaign(port=0, **kwargs).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def open_api() -> Iterator[Callable[..., ApiSession]]:
    """Opens ApiSessions and closes them all after the test."""
    sessions: list[ApiSession] = []

    def open_session(base_url: str, **kwargs: Any) -> ApiSession:
        session = ApiSession(base_url, **kwargs)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.close()


@pytest.fixture
def emulator(start_emulator: Callable[..., FakeActiveCampaign]) -> FakeActiveCampaign:
    """An emulator without a rate limit: pacing has tests of its own."""
    return start_emulator(rate_limit=0)


@pytest.fixture
def api(emulator: FakeActiveCampaign, open_api: Callable[..., ApiSession]) -> ApiSession:
    return open_api(emulator.url)


@pytest.fixture
def admin(emulator: FakeActiveCampaign) -> Iterator[EmulatorClient]:
    with EmulatorClient(emulator.url) as client:
        yield client
