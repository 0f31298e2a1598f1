"""An HTTP emulator of the ActiveCampaign API endpoints contact-sync uses.

Standard library only on the serving side. `FakeActiveCampaign` runs in-process (tests);
`main` runs it as a process (`contact-sync fake-activecampaign`, `python -m
fake_activecampaign`); `EmulatorClient` reads its admin API at /_emulator/.

Modules: `emulator` (lifecycle), `server` (HTTP plumbing), `api` (the /api/3 endpoints and
their gate), `admin` (/_emulator/), `schema` (what sync accepts), `store` (contacts),
`bodies` (response shapes), `fields` (custom fields), `ratelimit` (arrival window),
`faults`, `traffic` (request log and stats), `auth` (the token), `client`, `cli`.
"""

from __future__ import annotations

from fake_activecampaign.cli import main
from fake_activecampaign.client import EmulatorClient
from fake_activecampaign.emulator import FakeActiveCampaign

__all__ = ["EmulatorClient", "FakeActiveCampaign", "main"]
