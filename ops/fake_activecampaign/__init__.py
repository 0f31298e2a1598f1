"""An HTTP emulator of the ActiveCampaign API endpoints contact-sync uses.

Standard library only on the serving side. `FakeActiveCampaign` runs in-process (tests);
`main` runs it as a process (`contact-sync fake-activecampaign`, `python -m
fake_activecampaign`); `EmulatorClient` reads its admin API at /_emulator/.

Modules: `emulator` (lifecycle), `server` (HTTP plumbing), `exchange` (request and reply
values), `api` (the gate every /api/3 request passes), `router` (route templates), the
endpoint groups `contacts_api`, `fields_api`, `tags_api`, `lists_api`, `accounts_api`,
`inputs` and `schema` (what they accept), `paging`, `bodies` (response shapes), `state`
(the account: `store` contacts, `fields`, `catalogs` of tags/lists/accounts, `links`),
`values` (field value forms), `subjects` (which contact a request is about), `admin`,
`admin_catalogs` and `inspection` (/_emulator/), `ratelimit`, `faults`, `traffic` (request
log and stats), `auth` (the token), `client`, `cli`. Bulk import: `bulk_api` (the two
endpoints), `bulk_input` (body checks), `bulk_limits` (per-minute windows), `bulk_state`
(batches), `bulk_runner` (asynchronous processing), `bulk_apply` (one contact),
`bulk_settings` and `admin_bulk` (speed, faults, inspection). README.md lists the endpoints and
which behaviours are assumptions.
"""

from __future__ import annotations

from fake_activecampaign.cli import main
from fake_activecampaign.client import EmulatorClient
from fake_activecampaign.emulator import FakeActiveCampaign

__all__ = ["EmulatorClient", "FakeActiveCampaign", "main"]
