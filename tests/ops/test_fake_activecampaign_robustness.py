"""Bad input at the socket level never crashes the emulator or prints a traceback."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest
import requests

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from tests.ops.helpers import ApiSession


def _exchange(emulator: FakeActiveCampaign, raw: bytes) -> bytes:
    url = urlsplit(emulator.url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=5) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_of(response: bytes) -> int:
    # http.server answers a request line it cannot parse the HTTP/0.9 way: no status line,
    # just the HTML error page.
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", response) or re.search(
        rb"Error code: (\d{3})", response
    )
    assert match is not None, response[:200]
    return int(match.group(1))


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /api/3/fields HTTP/1.x\r\n\r\n", 400),
        (b"POST /api/3/contact/sync HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /api/3/contact/sync HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /api/3/contact/sync HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST /api/3/contact/sync HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET /api/3/fields HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"BREW /api/3/fields HTTP/1.1\r\n\r\n", 501),
    ],
    ids=["request-line", "length-text", "length-negative", "chunked", "huge", "header", "method"],
)
def test_malformed_http_gets_an_error_status(
    emulator: FakeActiveCampaign, api: ApiSession, raw: bytes, status: int
) -> None:
    """Malformed requests get an error status instead of killing the server."""
    assert _status_of(_exchange(emulator, raw)) == status
    assert api.get("/api/3/fields").status_code == 200


def test_client_vanishing_mid_body_is_harmless(
    emulator: FakeActiveCampaign, api: ApiSession, capfd: pytest.CaptureFixture[str]
) -> None:
    """A client that promises 100 bytes and disconnects after 10 leaves the server serving."""
    raw = b"POST /api/3/contact/sync HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
    assert _exchange(emulator, raw) == b""

    assert api.sync({"email": "a@example.com"}).status_code == 201
    assert "Traceback" not in capfd.readouterr().err


def test_clients_timing_out_leave_no_traceback(
    api: ApiSession, capfd: pytest.CaptureFixture[str]
) -> None:
    """Answers written to a client that already gave up are dropped quietly."""
    with EmulatorClient(api.base_url) as admin:
        admin.set_faults(latency_ms=300)
        for n in range(3):
            with pytest.raises(requests.ReadTimeout):
                api.sync({"email": f"u{n}@example.com"}, timeout=0.05)
        admin.clear_faults()
        assert api.sync({"email": "a@example.com"}).status_code == 201
    assert "Traceback" not in capfd.readouterr().err
