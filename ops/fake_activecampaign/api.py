"""The gate every /api/3/ request passes, and the table of endpoints behind it.

The endpoints live one group per module: `contacts_api` (contact/sync, contacts),
`fields_api`, `tags_api` (tags, contactTags), `lists_api` (lists, contactLists),
`accounts_api` (accounts, accountContacts) and `bulk_api` (import/bulk_import, import/info).
Every one of them passes the same gate, so the rate limit, faults, latency and the token
check apply to all alike, in this order:

1. faults are decided; a forced 429 is answered at once and, like any 429, stays out of
   the rate window;
2. the per-account arrival window answers 429 when full; every other answer counts. A
   route with limits of its own (bulk_import) is admitted by them instead, and is not
   counted in the window at all;
3. simulated latency, then the fault if one was decided (503, forced status, hang, reset);
4. the `Api-Token` check (403), then the route.

The in-flight counts cover steps 1-4 but not a hang's wait: a hung request has stopped
being processed, and a client that times out and retries it is not sending concurrently.
Bookkeeping ends before the answer is written, because a client may send its next request
the moment it reads the answer, and that request must not overlap this one in the stats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from fake_activecampaign import bodies
from fake_activecampaign.accounts_api import AccountEndpoints
from fake_activecampaign.auth import ApiToken
from fake_activecampaign.bulk_api import BulkEndpoints
from fake_activecampaign.bulk_runner import BulkImport
from fake_activecampaign.contacts_api import ContactEndpoints
from fake_activecampaign.exchange import RESET, Reply, Request
from fake_activecampaign.faults import Fault, Faults
from fake_activecampaign.fields_api import FieldEndpoints
from fake_activecampaign.lists_api import ListEndpoints
from fake_activecampaign.ratelimit import (
    Admission,
    ArrivalWindow,
    limit_header,
    retry_after_header,
)
from fake_activecampaign.router import Route, Router
from fake_activecampaign.state import AccountState
from fake_activecampaign.subjects import request_email
from fake_activecampaign.tags_api import TagEndpoints
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
        state: AccountState,
        traffic: Traffic,
        window: ArrivalWindow,
        faults: Faults,
        token: ApiToken,
        bulk: BulkImport,
        base_url: str,
        wait: Callable[[float], bool],
    ) -> None:
        self._state = state
        self._traffic = traffic
        self._window = window
        self._faults = faults
        self._token = token
        self._wait = wait
        self._router = Router(
            (
                *ContactEndpoints(
                    state=state, traffic=traffic, faults=faults, base_url=base_url
                ).routes(),
                *FieldEndpoints(fields=state.fields, base_url=base_url).routes(),
                *TagEndpoints(state=state, base_url=base_url).routes(),
                *ListEndpoints(state=state, traffic=traffic, base_url=base_url).routes(),
                *AccountEndpoints(state=state).routes(),
                *BulkEndpoints(bulk=bulk, traffic=traffic).routes(),
            )
        )

    def handle(self, request: Request) -> Reply:
        is_api = request.path.startswith(API_PREFIX)
        resolved = self._router.resolve(request.method, request.path) if is_api else None
        params = {} if resolved is None else resolved[1]
        email = request_email(request, params=params, state=self._state)
        if request.body_error is not None:
            reply = Reply(request.body_error, dict(_BODY_ERRORS.get(request.body_error, {})))
        elif not is_api:
            reply = Reply(404, dict(bodies.NOT_FOUND))
        else:
            with self._traffic.in_flight(email):
                reply = self._gate(request, resolved)
        template = self._router.template_for(request.path)
        log_body = None if resolved is None else resolved[0].log_body
        logged = request if log_body is None else replace(request, body=log_body(request.body))
        self._traffic.record(logged, status=reply.status, email=email, template=template)
        if reply.delay_s > 0 and self._wait(reply.delay_s):
            return RESET
        return reply

    def _gate(self, request: Request, resolved: tuple[Route, dict[str, str]] | None) -> Reply:
        fault = self._faults.decide(request.arrived_mono_s)
        if fault is not None and fault.kind == "status" and fault.status == 429:
            self._wait(self._faults.latency_s())
            return self._fault_reply(fault, None)
        own_limits = None if resolved is None else resolved[0].admit
        admission: Admission | None = None
        if own_limits is not None:
            refusal = None if fault is not None else own_limits(request)
            if refusal is not None:
                self._wait(self._faults.latency_s())
                return refusal
        elif fault is None:
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
        elif resolved is None:
            reply = Reply(404, dict(bodies.NOT_FOUND))
        else:
            route, params = resolved
            reply = route.handler(request, params)
        return reply.with_headers(self._rate_headers(admission))

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

    def _rate_headers(self, admission: Admission | None) -> list[tuple[str, str]]:
        if admission is None or not self._window.enabled:
            return []
        return [
            ("RateLimit-Limit", limit_header(self._window.limit)),
            ("RateLimit-Remaining", str(admission.remaining)),
        ]
