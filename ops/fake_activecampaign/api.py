"""The ActiveCampaign endpoints we emulate: contact/sync, contacts?email= and fields.

Every request under /api/3/ passes the same gate, in this order:

1. faults are decided; a forced 429 is answered at once and, like any 429, stays out of
   the rate window;
2. the per-account arrival window answers 429 when full; every other answer counts;
3. simulated latency, then the fault if one was decided (503, forced status, hang, reset);
4. the `Api-Token` check (403), then the route.

The in-flight counts cover steps 1-4 but not a hang's wait: a hung request has stopped
being processed, and a client that times out and retries it is not sending concurrently.
Bookkeeping ends before the answer is written, because a client may send its next request
the moment it reads the answer, and that request must not overlap this one in the stats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fake_activecampaign import bodies, schema
from fake_activecampaign.auth import ApiToken
from fake_activecampaign.exchange import RESET, Reply, Request
from fake_activecampaign.faults import Fault, Faults
from fake_activecampaign.fields import KNOWN_FIELD_IDS, fields_page, page_bounds
from fake_activecampaign.ratelimit import (
    Admission,
    ArrivalWindow,
    limit_header,
    retry_after_header,
)
from fake_activecampaign.store import ContactStore
from fake_activecampaign.traffic import Traffic

__all__ = ["API_PREFIX", "Api"]

API_PREFIX = "/api/3/"
_BODY_ERRORS = {
    400: {},
    411: {"message": "Length Required"},
    413: {"message": "Request Entity Too Large"},
}


class Api:
    """Answers client requests (anything outside /_emulator/).

    `wait(seconds)` sleeps and returns True when the emulator is stopping, so latency and
    hangs end promptly on `stop()`.
    """

    def __init__(
        self,
        *,
        store: ContactStore,
        traffic: Traffic,
        window: ArrivalWindow,
        faults: Faults,
        token: ApiToken,
        base_url: str,
        wait: Callable[[float], bool],
    ) -> None:
        self._store = store
        self._traffic = traffic
        self._window = window
        self._faults = faults
        self._token = token
        self._base_url = base_url
        self._wait = wait

    def handle(self, request: Request) -> Reply:
        email = _request_email(request)
        if request.body_error is not None:
            reply = Reply(request.body_error, dict(_BODY_ERRORS.get(request.body_error, {})))
        elif not request.path.startswith(API_PREFIX):
            reply = Reply(404, dict(bodies.NOT_FOUND))
        else:
            with self._traffic.in_flight(email):
                reply = self._gate(request)
        self._traffic.record(request, status=reply.status, email=email)
        if reply.delay_s > 0 and self._wait(reply.delay_s):
            return RESET
        return reply

    def _gate(self, request: Request) -> Reply:
        fault = self._faults.decide(request.arrived_mono_s)
        if fault is not None and fault.kind == "status" and fault.status == 429:
            self._wait(self._faults.latency_s())
            return self._fault_reply(fault, None)
        if fault is None:
            admission = self._window.try_admit(request.arrived_mono_s)
            if not admission.admitted:
                self._wait(self._faults.latency_s())
                return Reply(
                    429,
                    dict(bodies.TOO_MANY_REQUESTS),
                    (("Retry-After", retry_after_header(admission.retry_after_s)),),
                ).with_headers(self._rate_headers(admission))
        else:
            admission = self._window.record(request.arrived_mono_s)
        if self._wait(self._faults.latency_s()):
            return RESET
        if fault is not None:
            return self._fault_reply(fault, admission)
        if not self._token.matches(request.api_token):
            reply = Reply(403, dict(bodies.FORBIDDEN))
        else:
            reply = self._route(request)
        return reply.with_headers(self._rate_headers(admission))

    def _route(self, request: Request) -> Reply:
        route = (request.method, request.path.rstrip("/"))
        if route == ("POST", "/api/3/contact/sync"):
            return self._sync(request)
        if route == ("GET", "/api/3/contacts"):
            return self._contacts(request)
        if route == ("GET", "/api/3/fields"):
            limit, offset = request.query_value("limit"), request.query_value("offset")
            return Reply(200, fields_page(limit, offset))
        return Reply(404, dict(bodies.NOT_FOUND))

    def _sync(self, request: Request) -> Reply:
        try:
            contact = schema.contact_object(request.body)
        except schema.BadSyncBody:
            return Reply(400, {})
        self._traffic.count_ignored(attributes=len(schema.ignored_attributes(contact)))
        problem = schema.email_problem(contact.get("email"))
        if problem is not None:
            return Reply(422, bodies.errors_body(problem))
        try:
            sync = schema.parse_contact(contact)
        except schema.BadSyncBody:
            return Reply(400, {})
        if self._faults.rejects_email(sync.email):
            return Reply(422, bodies.errors_body(schema.EMAIL_INVALID))
        outcome = self._store.upsert(sync, now_s=time.time())
        unknown = sum(1 for field_id, _ in sync.field_values if field_id not in KNOWN_FIELD_IDS)
        self._traffic.count_sync(created=outcome.created, unknown_field_values=unknown)
        return Reply(
            201,
            bodies.sync_body(outcome, base_url=self._base_url),
            delay_s=self._faults.delay_after_store_s(),
        )

    def _contacts(self, request: Request) -> Reply:
        email = request.query_value("email")
        if email is not None:
            found = self._store.get(email)
            page = [] if found is None else [found]
            total = len(page)
        else:
            limit, offset = page_bounds(request.query_value("limit"), request.query_value("offset"))
            everyone = list(self._store.all().values())
            page, total = everyone[offset : offset + limit], len(everyone)
        return Reply(
            200,
            {
                "contacts": [bodies.contact_body(c, base_url=self._base_url) for c in page],
                "meta": {"total": str(total)},
            },
        )

    def _fault_reply(self, fault: Fault, admission: Admission | None) -> Reply:
        if fault.kind == "reset":
            return RESET
        if fault.kind == "hang":
            # Answer only after the client has (very likely) given up, then close: a proxy
            # that finally times out upstream behaves the same way.
            return Reply(
                503, dict(bodies.SERVICE_UNAVAILABLE), close=True, delay_s=self._faults.hang_s()
            )
        headers: list[tuple[str, str]] = []
        if fault.retry_after is not None:
            headers.append(("Retry-After", fault.retry_after))
        if fault.status == 429:
            if self._window.enabled:
                headers.append(("RateLimit-Limit", limit_header(self._window.limit)))
            headers.append(("RateLimit-Remaining", "0"))
        elif admission is not None:
            headers.extend(self._rate_headers(admission))
        return Reply(fault.status, bodies.status_body(fault.status), tuple(headers))

    def _rate_headers(self, admission: Admission) -> list[tuple[str, str]]:
        if not self._window.enabled:
            return []
        return [
            ("RateLimit-Limit", limit_header(self._window.limit)),
            ("RateLimit-Remaining", str(admission.remaining)),
        ]


def _request_email(request: Request) -> str | None:
    """The email a request is about: the synced contact's, or a lookup's `email` query."""
    body: Any = request.body
    if isinstance(body, dict) and isinstance(body.get("contact"), dict):
        email = body["contact"].get("email")
        return email if isinstance(email, str) and email else None
    return request.query_value("email") if request.path.startswith(API_PREFIX) else None
