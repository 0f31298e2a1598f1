"""Destinations: the ActiveCampaign accounts contact-sync writes to.

``CONTACT_SYNC_DESTINATIONS_FILE`` names a JSON file
``{"NAME": {"url": "...", "token_file": "...", "rate_limit": 5}, ...}``. Without it, the
``ACTIVECAMPAIGN_*`` variables define one destination called ``default``. Each destination
has its own keys in Redis (``worker/keys.py``), hence its own limiter, 429 pause, confirmed
state, catalogs, bulk import limits, statistics and dead letters.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from worker.errors import ConfigError
from worker.keys import DEFAULT_DESTINATION
from worker.secret import Token, TokenFile

__all__ = [
    "DEFAULT_DESTINATION",
    "DESTINATION_ERROR",
    "DESTINATION_NAME",
    "FILE_VARIABLE",
    "Destination",
    "load_destinations",
    "parse_api_url",
]

# Letters, digits, "_" and "-": a name goes into Redis keys, metric labels and log lines.
DESTINATION_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
DESTINATION_ERROR = (
    "Must be a destination name: 1 to 64 letters, digits, '_' or '-', "
    "starting with a letter or digit."
)
FILE_VARIABLE = "CONTACT_SYNC_DESTINATIONS_FILE"
_API_PATH = "/api/3"
_KEYS = {"url", "token_file", "rate_limit"}


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    token: Token = field(repr=False)
    rate_limit: float


def load_destinations(
    path: str,
    *,
    allow_insecure: bool,
    default_rate_limit: float = 5.0,
    on_new_token: Callable[[str], object] = lambda token: None,
    on_unreadable_token: Callable[[str, str], object] = lambda variable, problem: None,
) -> dict[str, Destination]:
    """Read and check the destinations file; ConfigError names the variable and the entry."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(FILE_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(FILE_VARIABLE, f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not document:
        raise ConfigError(FILE_VARIABLE, f"{path} must hold a non-empty JSON object")
    destinations = {}
    for name, entry in document.items():
        destinations[name] = _destination(
            name,
            entry,
            allow_insecure=allow_insecure,
            default_rate_limit=default_rate_limit,
            on_new_token=on_new_token,
            on_unreadable_token=on_unreadable_token,
        )
    return destinations


def _destination(
    name: str,
    entry: Any,
    *,
    allow_insecure: bool,
    default_rate_limit: float,
    on_new_token: Callable[[str], object],
    on_unreadable_token: Callable[[str, str], object],
) -> Destination:
    where = f"{FILE_VARIABLE} ({name!r})"
    if not DESTINATION_NAME.fullmatch(name):
        raise ConfigError(
            FILE_VARIABLE,
            f"destination name {name!r} must be 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit",
        )
    if not isinstance(entry, dict):
        raise ConfigError(where, "must be an object with url, token_file and rate_limit")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(where, f"unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("url", "token_file"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(where, f"{key!r} is required and must be a string")
    rate = entry.get("rate_limit", default_rate_limit)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate >= 0.01:
        raise ConfigError(where, f"'rate_limit' must be a number >= 0.01, got {rate!r}")
    url = parse_api_url(where, entry["url"].strip(), allow_insecure=allow_insecure)
    token = TokenFile(
        entry["token_file"].strip(),
        variable=where,
        on_new=on_new_token,
        on_unreadable=lambda problem: on_unreadable_token(where, problem),
    )
    return Destination(name=name, url=url, token=token, rate_limit=float(rate))


def parse_api_url(variable: str, raw: str, *, allow_insecure: bool) -> str:
    """The account's base URL (``https://acct.api-us1.com``), or ConfigError naming ``variable``."""
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            variable, f"must be an http(s) base URL like https://acct.api-us1.com, got {raw!r}"
        )
    if parts.scheme == "http" and not (allow_insecure or _is_loopback(parts.hostname)):
        raise ConfigError(
            variable,
            "must use https (plain http is allowed only for loopback addresses, "
            "or with CONTACT_SYNC_ALLOW_INSECURE_URL=true)",
        )
    if parts.query or parts.fragment:
        raise ConfigError(variable, "must be a base URL without query or fragment")
    path = parts.path.rstrip("/")
    # Users often paste the URL with /api/3, as other integrations accept it. The client
    # adds /api/3 itself, and the doubled path was a 404 retried as a config error for a day.
    if path.lower().endswith(_API_PATH):
        path = path[: -len(_API_PATH)].rstrip("/")
    if path:
        raise ConfigError(
            variable,
            "must be the account's base URL like https://acct.api-us1.com, "
            f"without a path; got path {parts.path!r}",
        )
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
