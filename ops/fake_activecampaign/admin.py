"""The admin API under /_emulator/: what tests read, define and how they inject faults.

No token is needed here, and nothing here echoes the API token back. The catalog routes
(fields, tags, lists, accounts) are in admin_catalogs.py, the bulk import ones in
admin_bulk.py.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from fake_activecampaign import bodies
from fake_activecampaign.admin_bulk import AdminBulk
from fake_activecampaign.admin_catalogs import AdminCatalogs
from fake_activecampaign.auth import ApiToken
from fake_activecampaign.bulk_runner import BulkImport
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.faults import FaultConfigError, Faults
from fake_activecampaign.inspection import contact_view
from fake_activecampaign.ratelimit import ArrivalWindow
from fake_activecampaign.state import AccountState
from fake_activecampaign.traffic import Traffic

__all__ = ["ADMIN_PREFIX", "ADMIN_ROUTES", "Admin", "is_admin_path"]

ADMIN_PREFIX = "/_emulator"
ADMIN_ROUTES = (
    "GET /_emulator/contacts",
    "GET /_emulator/contacts/<email>",
    "GET /_emulator/stats",
    "GET /_emulator/requests",
    "GET /_emulator/faults",
    "POST /_emulator/faults",
    "POST /_emulator/token",
    "POST /_emulator/reset",
    "GET /_emulator/fields",
    "POST /_emulator/fields",
    "GET /_emulator/tags",
    "POST /_emulator/tags",
    "GET /_emulator/lists",
    "POST /_emulator/lists",
    "GET /_emulator/accounts",
    "POST /_emulator/accounts",
    "GET /_emulator/bulk",
    "POST /_emulator/bulk",
    "GET /_emulator/bulk/stats",
    "GET /_emulator/bulk/batches",
    "GET /_emulator/bulk/batches/<batchId>",
)
_CONTACT_PREFIX = f"{ADMIN_PREFIX}/contacts/"


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(f"{ADMIN_PREFIX}/")


class Admin:
    """Routes for /_emulator/; `reset` restores the emulator as it was constructed."""

    def __init__(
        self,
        *,
        state: AccountState,
        traffic: Traffic,
        window: ArrivalWindow,
        faults: Faults,
        token: ApiToken,
        bulk: BulkImport,
        reset: Callable[[], None],
    ) -> None:
        self._state = state
        self._traffic = traffic
        self._window = window
        self._faults = faults
        self._token = token
        self._reset = reset
        self._bulk = AdminBulk(bulk=bulk, prefix=ADMIN_PREFIX)
        self._routes: dict[tuple[str, str], Callable[[Request], Reply]] = {
            ("GET", f"{ADMIN_PREFIX}/contacts"): self._contacts,
            ("GET", f"{ADMIN_PREFIX}/stats"): self._stats,
            ("GET", f"{ADMIN_PREFIX}/requests"): self._requests,
            ("GET", f"{ADMIN_PREFIX}/faults"): self._get_faults,
            ("POST", f"{ADMIN_PREFIX}/faults"): self._set_faults,
            ("POST", f"{ADMIN_PREFIX}/token"): self._set_token,
            ("POST", f"{ADMIN_PREFIX}/reset"): self._do_reset,
            **AdminCatalogs(state=state, prefix=ADMIN_PREFIX).routes(),
            **self._bulk.routes(),
        }

    def handle(self, request: Request) -> Reply:
        if request.body_error is not None:
            return Reply(request.body_error, {"message": "unreadable body"})
        path = request.path.rstrip("/")
        route = self._routes.get((request.method, path))
        if route is not None:
            return route(request)
        if request.method == "GET" and path.startswith(_CONTACT_PREFIX):
            return self._contact(unquote(path[len(_CONTACT_PREFIX) :]))
        if request.method == "GET" and path.startswith(self._bulk.batch_prefix):
            return self._bulk.batch(unquote(path[len(self._bulk.batch_prefix) :]))
        if any(known_path == path for _, known_path in self._routes):
            return Reply(405, {"message": "Method Not Allowed"})
        return Reply(404, dict(bodies.NOT_FOUND))

    def _contacts(self, _request: Request) -> Reply:
        contacts = self._state.contacts.all()
        return Reply(200, {key: contact_view(self._state, c) for key, c in contacts.items()})

    def _contact(self, email: str) -> Reply:
        contact = self._state.contacts.get(email)
        if contact is None:
            return Reply(404, dict(bodies.NOT_FOUND))
        return Reply(200, contact_view(self._state, contact))

    def _stats(self, _request: Request) -> Reply:
        return Reply(200, self._traffic.stats(max_per_second=self._window.peak()))

    def _requests(self, _request: Request) -> Reply:
        return Reply(200, self._traffic.log())

    def _get_faults(self, _request: Request) -> Reply:
        return Reply(200, self._faults.snapshot())

    def _set_faults(self, request: Request) -> Reply:
        if not isinstance(request.body, dict):
            return Reply(400, {"message": "expected a JSON object of fault settings"})
        try:
            self._faults.update(request.body)
        except FaultConfigError as exc:
            return Reply(400, {"message": str(exc)})
        return Reply(200, self._faults.snapshot())

    def _set_token(self, request: Request) -> Reply:
        body = request.body
        token = body.get("api_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return Reply(400, {"message": 'expected {"api_token": "<non-empty string>"}'})
        self._token.set(token)
        return Reply(200, {"ok": True})

    def _do_reset(self, _request: Request) -> Reply:
        self._reset()
        return Reply(200, {"ok": True})
