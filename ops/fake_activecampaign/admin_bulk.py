"""Admin routes for bulk import: /_emulator/bulk (settings), /bulk/stats, /bulk/batches.

- `GET /_emulator/bulk`: the settings in force (bulk_settings.py);
- `POST /_emulator/bulk`: merge settings, `{"clear": true}` restores the constructed ones;
  400 with a message, changing nothing, when one is invalid;
- `GET /_emulator/bulk/stats`: counters (bulk_state.py) plus `rate_limited`;
- `GET /_emulator/bulk/batches`: every known batch, oldest first, with counts;
- `GET /_emulator/bulk/batches/<batchId>`: one batch with its `success` ids and `failure`
  emails, or 404.
Reading here costs no API request and changes no batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fake_activecampaign import bodies
from fake_activecampaign.bulk_runner import BulkImport
from fake_activecampaign.bulk_settings import BulkConfigError
from fake_activecampaign.exchange import Reply, Request

__all__ = ["AdminBulk"]

AdminHandler = Callable[[Request], Reply]


class AdminBulk:
    def __init__(self, *, bulk: BulkImport, prefix: str) -> None:
        self._bulk = bulk
        self._prefix = prefix
        self.batch_prefix = f"{prefix}/bulk/batches/"

    def routes(self) -> dict[tuple[str, str], AdminHandler]:
        p = self._prefix
        return {
            ("GET", f"{p}/bulk"): self._settings,
            ("POST", f"{p}/bulk"): self._update,
            ("GET", f"{p}/bulk/stats"): self._stats,
            ("GET", f"{p}/bulk/batches"): self._batches,
        }

    def batch(self, batch_id: str) -> Reply:
        """`GET /_emulator/bulk/batches/<batchId>`."""
        detail = self._bulk.batches.detail(batch_id, now_mono_s=time.monotonic())
        if detail is None:
            return Reply(404, dict(bodies.NOT_FOUND))
        return Reply(200, detail)

    def _settings(self, _request: Request) -> Reply:
        return Reply(200, self._bulk.settings.snapshot())

    def _update(self, request: Request) -> Reply:
        if not isinstance(request.body, dict):
            return Reply(400, {"message": "expected a JSON object of bulk settings"})
        try:
            self._bulk.settings.update(request.body)
        except BulkConfigError as exc:
            return Reply(400, {"message": str(exc)})
        return Reply(200, self._bulk.settings.snapshot())

    def _stats(self, _request: Request) -> Reply:
        return Reply(200, self._bulk.stats())

    def _batches(self, _request: Request) -> Reply:
        return Reply(200, self._bulk.batches.summaries(now_mono_s=time.monotonic()))
