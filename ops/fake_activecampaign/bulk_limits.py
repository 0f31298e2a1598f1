"""Bulk import's own request limits: 100/minute for multi-contact requests, 20/minute for
single-contact ones (documented), answered HTTP 400 "Rate limit exceeded." rather than 429.

The reference says bulk import "has limits of its own"; the emulator reads that as: bulk
requests are not counted against the account's 5/s window, and only against these two
sliding 60-second windows (an assumption, see README.md). Like the 5/s window, arrivals are
counted on arrival, and refused requests do not use up the window. A request with anything
but exactly one contact (including a malformed body) counts as multi-contact. Changing a
limit through the admin API starts that window afresh.
"""

from __future__ import annotations

import threading
from typing import Any

from fake_activecampaign.bulk_input import contact_count
from fake_activecampaign.bulk_settings import BulkSettings
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.ratelimit import ArrivalWindow

__all__ = ["RATE_LIMITED", "BulkLimits"]

RATE_LIMITED: dict[str, Any] = {
    "success": 0,
    "message": "Rate limit exceeded.",
    "failureReasons": [],
}
_WINDOW_S = 60.0


class BulkLimits:
    """The two per-minute windows, and the forced refusals of `BulkSettings`."""

    def __init__(self, settings: BulkSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._windows: dict[bool, ArrivalWindow] = {}
        self._refused = 0

    def admit(self, request: Request) -> Reply | None:
        """None when the bulk_import `request` may proceed; else the 400 to answer."""
        single = contact_count(request.body) == 1
        if (
            self._settings.take_forced_rate_limit()
            or not self._window(single).try_admit(request.arrived_mono_s).admitted
        ):
            with self._lock:
                self._refused += 1
            return Reply(400, dict(RATE_LIMITED))
        return None

    def refused(self) -> int:
        """Requests refused as rate limited since the last reset."""
        with self._lock:
            return self._refused

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._refused = 0

    def _window(self, single: bool) -> ArrivalWindow:
        limit = self._settings.per_minute(single=single)
        with self._lock:
            window = self._windows.get(single)
            if window is None or window.limit != limit:
                window = self._windows[single] = ArrivalWindow(limit, window_s=_WINDOW_S)
            return window
