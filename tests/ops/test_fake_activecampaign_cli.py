"""`main()` as a process: the listening line, serving, and a clean exit on signals."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from typing import IO

import pytest
import requests

from fake_activecampaign import main
from tests.ops.helpers import SYNC_PATH

_STARTUP_TIMEOUT_S = 15.0


def _read_line(stream: IO[str], timeout_s: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise TimeoutError("no line from the emulator process")
    return stream.readline()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_main_announces_url_serves_and_exits_0_on_signal(stop_signal: signal.Signals) -> None:
    """`python -m fake_activecampaign --port 0` prints one JSON line, serves, exits 0 on signal."""
    env = {**os.environ, "FAKE_ACTIVECAMPAIGN_TOKEN": "env-token"}
    command = [sys.executable, "-m", "fake_activecampaign", "--port", "0", "--rate-limit", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            announcement = json.loads(_read_line(process.stdout, _STARTUP_TIMEOUT_S))
            assert announcement["event"] == "fake_activecampaign.listening"
            assert list(announcement) == ["event", "url"]
            url = announcement["url"]
            assert url.startswith("http://127.0.0.1:")
            assert not url.endswith(":0")

            with requests.Session() as session:
                session.headers["Api-Token"] = "env-token"
                response = session.post(
                    f"{url}{SYNC_PATH}", json={"contact": {"email": "a@example.com"}}, timeout=5
                )
            assert response.status_code == 201

            process.send_signal(stop_signal)
            assert process.wait(timeout=10) == 0
            assert process.stdout.read() == ""  # exactly one line was printed
        finally:
            if process.poll() is None:
                process.kill()


def test_main_returns_1_when_the_port_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    """main() reports a bind failure on stderr and returns 1 instead of raising."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        assert main(["--port", str(port)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["event"] == "fake_activecampaign.failed"
