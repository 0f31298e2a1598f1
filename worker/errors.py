"""Every exception contact-sync raises on purpose.

    ContactSyncError
     ├── ConfigError               a setting is missing or malformed (names the variable)
     ├── InvalidContactEvent       an event failed validation (also a ValueError)
     ├── EnqueueError              a producer could not reach Redis; carries written
     └── ApiError                  talking to ActiveCampaign failed
          ├── ApiTransportError    timeout, refused connection, broken response   (retryable)
          ├── RateLimited          429; carries retry_after_s                     (retryable)
          └── ApiStatusError       any other non-2xx; carries status and errors
               ├── ApiServerError      5xx                                        (retryable)
               ├── ApiConfigError      401/402/403/404: our setup is wrong, not the event
               └── ApiRejected         400/422 and other 4xx: the event itself is refused

Callers decide what to do from the class, never from the message text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ApiConfigError",
    "ApiError",
    "ApiRejected",
    "ApiServerError",
    "ApiStatusError",
    "ApiTransportError",
    "ConfigError",
    "ContactSyncError",
    "EnqueueError",
    "InvalidContactEvent",
    "RateLimited",
]


class ContactSyncError(Exception):
    """Base class of every error contact-sync raises on purpose."""


class ConfigError(ContactSyncError):
    """A setting is missing or malformed. The message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class InvalidContactEvent(ContactSyncError, ValueError):
    """An event failed validation.

    ``messages`` maps each offending attribute to marshmallow's messages for it, e.g.
    ``{"contact": {"email": ["Not a valid email address."]}}``.
    """

    def __init__(self, messages: Mapping[str, Any] | Sequence[Any] | str) -> None:
        self.messages = messages
        super().__init__(f"invalid contact event: {messages}")


class EnqueueError(ContactSyncError):
    """A producer could not write events to Redis.

    ``written`` counts the events enqueued before the failure: always a whole number of
    chunks from the start of the call, in order, so a caller can resume at ``written``.
    0 for a single event, which is then not enqueued, except after a ``WAIT`` that too few
    replicas acknowledged (``CONTACT_SYNC_PRODUCER_MIN_REPLICAS``): the event is then on the
    master but not counted, and sending it again is safe.
    """

    def __init__(self, message: str, *, written: int = 0) -> None:
        self.written = written
        super().__init__(message)


class ApiError(ContactSyncError):
    """Talking to ActiveCampaign failed."""


class ApiTransportError(ApiError):
    """No usable response: timeout, refused or reset connection, unreadable body."""


class RateLimited(ApiError):
    """ActiveCampaign answered 429. Nobody may send before ``retry_after_s`` has passed."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"rate limited: retry after {retry_after_s:g}s")


class ApiStatusError(ApiError):
    """A non-2xx answer other than 429. ``errors`` holds ActiveCampaign's error messages."""

    def __init__(self, status: int, errors: Sequence[str] = (), *, body: Any = None) -> None:
        self.status = status
        self.errors = list(errors)
        # The answer's JSON, for callers that read more than the messages (bulk import's
        # failureReasons). Never logged: it may name contacts.
        self.body = body
        detail = "; ".join(self.errors) if self.errors else "no error detail"
        super().__init__(f"HTTP {status}: {detail}")


class ApiServerError(ApiStatusError):
    """5xx: ActiveCampaign is in trouble. Retry with backoff."""


class ApiConfigError(ApiStatusError):
    """401/402/403/404: the token, the account or the URL is wrong. Retry slowly, never drop."""


class ApiRejected(ApiStatusError):
    """400/422 (and other 4xx): ActiveCampaign refuses this payload. Dead-letter it."""
