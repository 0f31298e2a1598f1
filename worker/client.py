"""The ActiveCampaign API client: one method per endpoint we use, errors as classes.

Classification (DESIGN.md, "Failure classes"): 2xx success; 429 RateLimited; 5xx
ApiServerError; 401/402/403/404 and any 3xx ApiConfigError (redirects are not followed:
a redirect means ACTIVECAMPAIGN_URL is wrong, and following one would send the token to
another host); 400, 422 and any other 4xx ApiRejected; timeouts and connection errors
ApiTransportError.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from worker.errors import (
    ApiConfigError,
    ApiRejected,
    ApiServerError,
    ApiTransportError,
    RateLimited,
)
from worker.secret import Token

__all__ = ["ActiveCampaignClient", "SyncResult", "parse_retry_after_s"]

USER_AGENT = "contact-sync/0.1 (+https://github.com/contact-sync)"
_CONFIG_STATUSES = {401, 402, 403, 404}
_MAX_RETRY_AFTER_S = 3600.0
CATALOG_PAGE = 100  # the API's largest page
_CONNECT_TIMEOUT_S = 3.05  # just over a TCP retransmission window, as requests' docs advise
_MAX_MESSAGE_CHARS = 300
_MAX_MESSAGES = 20


@dataclass(frozen=True, slots=True)
class SyncResult:
    """A 2xx answer. The body does not say whether the contact was created or updated."""

    status: int
    contact_id: str | None
    latency_ms: float


class _TokenAuth(requests.auth.AuthBase):
    """Adds ``Api-Token`` per request, so the token never sits in ``session.headers``."""

    def __init__(self, token: Token) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Api-Token"] = self._token.reveal()
        return request

    def __repr__(self) -> str:
        return "_TokenAuth(<redacted>)"


class ActiveCampaignClient:
    """Talks to one ActiveCampaign account. ``timeout_s`` bounds each read (seconds)."""

    def __init__(
        self,
        base_url: str,
        token: Token,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(_CONNECT_TIMEOUT_S, timeout_s), timeout_s)
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.session.auth = _TokenAuth(token)
        self._clock = clock

    def sync_contact(self, contact: Mapping[str, Any]) -> SyncResult:
        """``POST /api/3/contact/sync`` with ``{"contact": contact}``. Raises ApiError."""
        started = self._clock()
        response = self._post("/api/3/contact/sync", {"contact": dict(contact)})
        latency_ms = (self._clock() - started) * 1000.0
        body = _json_or_none(response)
        contact_body = body.get("contact") if isinstance(body, dict) else None
        contact_id = None
        if isinstance(contact_body, dict):
            raw_id = contact_body.get("id")
            contact_id = str(raw_id) if raw_id is not None else None
        return SyncResult(response.status_code, contact_id, latency_ms)

    def catalog(
        self, kind: str, *, before_request: Callable[[], None] = lambda: None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a catalog (``fields``, ``lists``, ``tags`` or ``accounts``), paged.

        Pages of ``CATALOG_PAGE`` (100, the API's maximum) until ``meta.total`` is reached or
        a page comes back empty. ``before_request`` runs before each request: the caller
        takes a rate-limiter slot there. Fields come with the values of their options
        (``fieldOptions``). Items are ``{"id", "name"}`` (``title``, ``perstag``, ``type``
        and ``options`` too for fields). Raises ApiError.
        """
        offset = 0
        while True:
            before_request()
            response = self._request(
                "GET", f"/api/3/{kind}", params={"limit": CATALOG_PAGE, "offset": offset}
            )
            body = _json_or_none(response)
            page = body.get(kind) if isinstance(body, dict) else None
            if not isinstance(page, list) or not page:
                return
            yield from _catalog_items(kind, page, body)
            offset += len(page)
            total = _total(body)
            if total is not None and offset >= total:
                return

    def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One request to ``/api/3/...``: the JSON body (None if not JSON). Raises ApiError."""
        return _json_or_none(self._request(method, path, json=json, params=params))

    def _post(self, path: str, payload: dict[str, Any]) -> requests.Response:
        return self._request("POST", path, json=payload)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> requests.Response:
        # Raise outside the except blocks: requests' exception holds the prepared request and
        # its Api-Token header, and `from None` would still keep it as __context__.
        failure = None
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            failure = f"timeout: {type(exc).__name__}"
        except requests.RequestException as exc:
            failure = f"transport error: {type(exc).__name__}"
        except Exception as exc:
            # Not a RequestException (e.g. UnicodeEncodeError from http.client): its frames'
            # locals hold the headers, token included, so it must not leave with them either.
            failure = f"transport error: {type(exc).__name__}"
        if failure is not None:
            raise ApiTransportError(failure)
        raise_for_status(response)
        return response

    def close(self) -> None:
        self.session.close()


def _catalog_items(kind: str, page: list[Any], body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    options: dict[str, list[str]] = {}
    if kind == "fields":
        for option in body.get("fieldOptions") or ():
            if isinstance(option, dict) and option.get("field") is not None:
                value = option.get("value", option.get("label"))
                options.setdefault(str(option["field"]), []).append(str(value))
    for item in page:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        item_id = str(item["id"])
        if kind == "fields":
            yield {
                "id": item_id,
                "title": str(item.get("title") or ""),
                "perstag": str(item.get("perstag") or ""),
                "type": str(item.get("type") or "text"),
                "options": options.get(item_id, []),
            }
        else:
            name = item.get("tag") if kind == "tags" else item.get("name")
            yield {"id": item_id, "name": str(name or "")}


def _total(body: dict[str, Any]) -> int | None:
    meta = body.get("meta")
    try:
        return int(meta["total"]) if isinstance(meta, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def raise_for_status(response: requests.Response) -> None:
    """Turn a non-2xx answer into the matching ApiError subclass."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        raise RateLimited(parse_retry_after_s(response.headers.get("Retry-After")))
    messages = response_error_messages(response)
    if status >= 500:
        raise ApiServerError(status, messages)
    if status in _CONFIG_STATUSES or 300 <= status < 400:
        raise ApiConfigError(status, messages)
    raise ApiRejected(status, messages, body=_json_or_none(response))


def parse_retry_after_s(
    value: str | None, *, now: float | None = None, default_s: float = 1.0
) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110)."""
    if value is None or not value.strip():
        return default_s
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return default_s
        if moment.tzinfo is None:
            return default_s
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return default_s
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def response_error_messages(response: requests.Response) -> list[str]:
    """The messages of an error answer: from its JSON (``error_messages``), else a snippet.

    A body that is not JSON (a proxy's HTML page, plain text) gives its first 300
    characters, an empty one the HTTP reason phrase, so a dead letter always says something.
    """
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        text = response.content[: 4 * _MAX_MESSAGE_CHARS].decode("utf-8", "replace")
        snippet = _clean(text) or _clean(response.reason or "")
        return [snippet] if snippet else []
    return error_messages(body)


def error_messages(body: Any) -> list[str]:
    """Every message in a parsed JSON error body, whatever its shape; never raises.

    Reads the shapes ActiveCampaign's endpoints use: ``errors`` as a list of objects
    (``title`` and ``detail``) or of strings, or as one string; ``message``; ``error``; and
    the bulk import's ``failureReasons`` (strings or ``{"contact", "failureReason"}``).
    At most 20 messages of at most 300 characters, each on one line; ``{}`` and unknown
    shapes give none.
    """
    if isinstance(body, str):
        found = [body]
    elif isinstance(body, dict):
        found = [
            *_texts(body.get("errors"), _error_object_text),
            *_texts(body.get("message")),
            *_texts(body.get("error")),
            *_texts(body.get("failureReasons"), _failure_reason_text),
        ]
    else:
        found = []
    cleaned = (_clean(text) for text in found)
    # dict.fromkeys: drop repeats (a "message" that repeats an error's title), keep the order.
    return list(dict.fromkeys(text for text in cleaned if text))[:_MAX_MESSAGES]


def _texts(value: Any, read_object: Callable[[dict[str, Any]], str] | None = None) -> list[str]:
    """A string, or the strings and (with ``read_object``) the objects of a list, as texts."""
    items = value[: 4 * _MAX_MESSAGES] if isinstance(value, list) else [value]
    texts: list[str] = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and read_object is not None:
            texts.append(read_object(item))
    return texts


def _error_object_text(item: dict[str, Any]) -> str:
    # {"title", "detail", ...}, {"status", "title"} or {"detail"}. Keep both texts: either
    # may be missing or empty, and a detail that differs from its title adds to it.
    title, detail = item.get("title"), item.get("detail")
    parts = [text.strip() for text in (title, detail) if isinstance(text, str) and text.strip()]
    return ": ".join(dict.fromkeys(parts))


def _failure_reason_text(item: dict[str, Any]) -> str:
    # {"contact": 3, "failureReason": "..."}: keep the index, it says which contact failed.
    reason, index = item.get("failureReason"), item.get("contact")
    if not isinstance(reason, str):
        return ""
    return f"contact {index}: {reason}" if isinstance(index, int | str) else reason


def _clean(text: str) -> str:
    """One line, at most 300 characters, and UTF-8 encodable (Redis and the logs need that)."""
    line = " ".join(text[: 4 * _MAX_MESSAGE_CHARS].split())[:_MAX_MESSAGE_CHARS]
    # A JSON body may escape a lone surrogate ("\ud800"), which UTF-8 cannot encode.
    return line.encode("utf-8", "replace").decode("utf-8")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, RecursionError):
        return None
