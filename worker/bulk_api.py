"""The two bulk import endpoints, and how their answers are read.

``POST /api/3/import/bulk_import`` answers 200 ``{"success": 1, "batchId": ...}`` (one
example spells it ``Success``), or HTTP 400 ``{"success": 0, "message", "failureReasons"}``:
the rate limit is one of these (``"Rate limit exceeded."``), a validation failure lists
``{"contact": INDEX, "failureReason"}`` and queues nothing. ``GET /api/3/import/info``
gives ``status`` (``false`` right after submitting) and the ``failure`` emails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.client import ActiveCampaignClient
from worker.errors import ApiRejected, ApiTransportError

__all__ = ["BulkRateLimited", "BulkRefused", "ImportInfo", "import_info", "submit"]

PENDING = frozenset({"waiting", "claimed", "active"})


class BulkRateLimited(Exception):
    """Bulk import's own limit ("Rate limit exceeded.", HTTP 400): pause bulk import."""


class BulkRefused(Exception):
    """A validation failure: the contacts at ``indices`` were refused, nothing was queued."""

    def __init__(self, indices: list[int], reasons: list[str]) -> None:
        super().__init__(f"bulk import refused {len(indices)} contacts")
        self.indices = indices
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class ImportInfo:
    status: str  # "pending" (false, waiting, claimed, active), completed, failed, interrupted
    failure: list[str] = field(default_factory=list)  # emails


def submit(client: ActiveCampaignClient, contacts: list[dict[str, Any]]) -> str:
    """Queue ``contacts``; return the batch id. Raises BulkRateLimited, BulkRefused, ApiError."""
    try:
        body = client.call("POST", "/api/3/import/bulk_import", json={"contacts": contacts})
    except ApiRejected as error:
        if error.status != 400:
            raise
        raise _refusal(error) from None
    batch_id = body.get("batchId") if isinstance(body, dict) else None
    if not batch_id:
        raise ApiTransportError("bulk import accepted without a batchId")
    return str(batch_id)


def import_info(client: ActiveCampaignClient, batch_id: str) -> ImportInfo:
    body = client.call("GET", "/api/3/import/info", params={"batchId": batch_id})
    if not isinstance(body, dict):
        raise ApiTransportError("import/info answered without a JSON object")
    status = body.get("status")
    if status is False or status is None or status in PENDING:
        return ImportInfo("pending")
    failure = [str(email) for email in body.get("failure") or () if isinstance(email, str)]
    if status in ("completed", "failed", "interrupted"):
        return ImportInfo(str(status), failure)
    raise ApiTransportError(f"import/info answered an unknown status {str(status)[:40]!r}")


def _refusal(error: ApiRejected) -> Exception:
    body = error.body if isinstance(error.body, dict) else {}
    message = str(body.get("message") or "")
    if "rate limit" in message.lower():
        return BulkRateLimited(message)
    indices, reasons = [], []
    for item in body.get("failureReasons") or ():
        index = item.get("contact") if isinstance(item, dict) else None
        if isinstance(index, int) and not isinstance(index, bool):
            indices.append(item["contact"])
            reasons.append(str(item.get("failureReason") or message)[:200])
    if not indices:
        return error  # names no contact: retried with backoff, then the sync path (bulk.py)
    return BulkRefused(indices, reasons)
