"""HTTP plumbing: bytes in, `Request` out; `Reply` in, bytes out. No emulator logic here.

HTTP/1.1 with keep-alive (requests.Session reuses connections), a Content-Length on every
answer, bodies capped at 1 MiB, and no per-request logging to stderr.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_activecampaign.exchange import Reply, Request

__all__ = ["MAX_BODY_BYTES", "EmulatorHTTPServer", "SizedRequest"]

MAX_BODY_BYTES = 1 << 20
# Up to this size an oversized body is read and discarded, so the client sees the 413
# instead of a connection reset in the middle of its upload; beyond it we just close.
_DRAIN_LIMIT_BYTES = 16 << 20
_CHUNK_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class SizedRequest(Request):
    """A Request that knows its body's size on the wire: bulk import limits it in bytes,
    and the parsed body cannot tell (whitespace, escapes)."""

    body_bytes: int = 0


def _not_ready(_request: Request) -> Reply:
    return Reply(503, {"message": "emulator starting"})


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server that can close its keep-alive connections on shutdown."""

    daemon_threads = True  # a hung request must never keep the process alive

    def __init__(self, address: tuple[str, int]) -> None:
        self.dispatch: Callable[[Request], Reply] = _not_ready
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake every handler blocked on a keep-alive read, so `stop()` really stops."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out, and our own resets, leave sockets that fail on write;
        # that is expected traffic, not an emulator bug worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK and every answer takes ~40 ms longer than the configured latency.
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def version_string(self) -> str:
        return "fake-activecampaign"

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one stderr line per request would drown the worker's own logs

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raw, body_error, must_close = self._read_body()
        if raw is None and body_error is None:
            self.close_connection = True  # the client went away mid-body
            return
        body = _parse_json(raw or b"")
        split = urlsplit(self.path)
        request = SizedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            api_token=self.headers.get("Api-Token"),
            body=body,
            arrived_at_s=time.time(),
            arrived_mono_s=time.monotonic(),
            body_error=body_error,
            body_bytes=len(raw or b""),
        )
        try:
            reply = self.server.dispatch(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            reply = Reply(500, {"message": "emulator error"}, close=True)
        self._write(reply, must_close=must_close)

    def _read_body(self) -> tuple[bytes | None, int | None, bool]:
        """(body, error status, must close). Body None without an error: client gone."""
        if self.headers.get("Transfer-Encoding"):
            return b"", 411, True  # nobody we emulate for sends chunked bodies
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b"", None, False
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            return b"", 400, True
        if length > MAX_BODY_BYTES:
            if length > _DRAIN_LIMIT_BYTES:
                return b"", 413, True
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, _CHUNK_BYTES))
                if not chunk:
                    return None, None, True
                remaining -= len(chunk)
            return b"", 413, False
        raw = self.rfile.read(length)
        if len(raw) < length:
            return None, None, True
        return raw, None, False

    def _write(self, reply: Reply, *, must_close: bool) -> None:
        if reply.reset:
            self._reset()
            return
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.close or must_close:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Close without answering; linger 0 makes the close an RST, like a dropped link."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


def _parse_json(raw: bytes) -> Any:
    """The parsed body, or None when it is empty or not JSON (routes answer 400 then)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    # Deeply nested input raises RecursionError rather than a ValueError.
    except (ValueError, RecursionError):
        return None
