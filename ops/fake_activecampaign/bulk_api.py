"""Bulk import: `POST /api/3/import/bulk_import` and `GET /api/3/import/info`.

Documented (reference, "Bulk import"): the body and limits (bulk_input.py); 200
`{"success": 1, "queued_contacts": N, "batchId": "<uuid>", "message": "Contact import
queued"}`; refusals are 400 `{"success": 0, "message", "failureReasons"}`, the rate limit
among them (bulk_limits.py); processing is asynchronous; `import/info?batchId=` answers
`{"status", "success": [contact ids], "failure": [emails]}`, `status` possibly `false`
right after submitting.
Assumed (see README.md): bulk_import passes the gate's faults, latency and token check but
not the 5/s window (it has limits of its own); import/info passes the whole gate like any
endpoint; an unknown batchId is a 404 `{"message": "No Result found for Batch with id
ID"}`, a missing one a 400 `{"message": "batchId is required"}`; `status: false` comes
without `success` and `failure`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from fake_activecampaign import bodies
from fake_activecampaign.bulk_input import BulkRefused, bulk_log_body, parse_bulk_import
from fake_activecampaign.bulk_runner import BulkImport
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.router import Route
from fake_activecampaign.server import SizedRequest
from fake_activecampaign.traffic import Traffic

__all__ = ["BULK_IMPORT_PATH", "IMPORT_INFO_PATH", "BulkEndpoints"]

BULK_IMPORT_PATH = "/api/3/import/bulk_import"
IMPORT_INFO_PATH = "/api/3/import/info"


class BulkEndpoints:
    def __init__(self, *, bulk: BulkImport, traffic: Traffic) -> None:
        self._bulk = bulk
        self._traffic = traffic

    def routes(self) -> tuple[Route, ...]:
        return (
            Route(
                "POST",
                BULK_IMPORT_PATH,
                self._import,
                admit=self._bulk.limits.admit,
                log_body=bulk_log_body,
            ),
            Route("GET", IMPORT_INFO_PATH, self._info),
        )

    def _import(self, request: Request, _params: Mapping[str, str]) -> Reply:
        body_bytes = request.body_bytes if isinstance(request, SizedRequest) else None
        try:
            contacts = parse_bulk_import(request.body, body_bytes=body_bytes)
        except BulkRefused as refused:
            self._bulk.batches.count_refused()
            return Reply(400, refused.body())
        self._traffic.count_ignored(attributes=sum(c.ignored_attributes for c in contacts))
        batch_id = self._bulk.batches.submit(
            contacts, now_mono_s=request.arrived_mono_s, now_s=time.time()
        )
        return Reply(
            200,
            {
                "success": 1,
                "queued_contacts": len(contacts),
                "batchId": batch_id,
                "message": "Contact import queued",
            },
        )

    def _info(self, request: Request, _params: Mapping[str, str]) -> Reply:
        batch_id = request.query_value("batchId")
        if not batch_id:
            return Reply(400, {"message": "batchId is required"})
        info = self._bulk.batches.info(batch_id, now_mono_s=time.monotonic())
        if info is None:
            return Reply(404, bodies.not_found("Batch", batch_id))
        return Reply(200, info)
