"""Shared values and the API session the emulator tests talk through."""

from __future__ import annotations

from typing import Any

import requests

TOKEN = "test-token"
SYNC_PATH = "/api/3/contact/sync"
# The request body of reference/sync-a-contact.seed.txt, verbatim.
SEED_REQUEST = {
    "contact": {
        "email": "jondoe@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "phone": "7223224241",
        "fieldValues": [
            {"field": "1", "value": "The Value for First Field"},
            {"field": "6", "value": "2008-01-20"},
        ],
    }
}


class ApiSession:
    """A keep-alive session that talks to the emulator the way the worker does."""

    def __init__(self, base_url: str, *, token: str | None = TOKEN, timeout_s: float = 5.0):
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Api-Token"] = token

    def sync(self, contact: dict[str, Any], **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return self.session.post(f"{self.base_url}{SYNC_PATH}", json={"contact": contact}, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return self.session.post(f"{self.base_url}{path}", **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return self.session.get(f"{self.base_url}{path}", **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return self.session.delete(f"{self.base_url}{path}", **kwargs)

    def contact_id(self, email: str) -> str:
        """Sync a bare contact and return its id."""
        response = self.sync({"email": email})
        assert response.status_code == 201, response.text
        return str(response.json()["contact"]["id"])

    def close(self) -> None:
        self.session.close()
