"""`fake-activecampaign`: run the emulator as a process until SIGTERM or SIGINT.

The one stdout line, `{"event": "fake_activecampaign.listening", "url": ...}`, is what
scripts parse to learn the port when they pass `--port 0`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from types import FrameType

from fake_activecampaign.bulk_settings import DEFAULT_SPEED_PER_S
from fake_activecampaign.emulator import FakeActiveCampaign

__all__ = ["main"]

TOKEN_ENV = "FAKE_ACTIVECAMPAIGN_TOKEN"  # noqa: S105 - a variable name, not a secret
BULK_SPEED_ENV = "FAKE_ACTIVECAMPAIGN_BULK_SPEED"
_SIGNAL_POLL_S = 0.1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fake-activecampaign",
        description="HTTP emulator of the ActiveCampaign API endpoints contact-sync uses.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument(
        "--rate-limit", type=float, default=5.0, help="requests/s per account; 0 disables"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 503")
    parser.add_argument("--seed", type=int, default=None, help="seed for --error-rate")
    parser.add_argument(
        "--bulk-speed",
        type=float,
        # A string default goes through type=float too, so a bad variable is a usage error.
        default=os.environ.get(BULK_SPEED_ENV, str(DEFAULT_SPEED_PER_S)),
        help=f"bulk import contacts applied per second (default: ${BULK_SPEED_ENV} or "
        f"{DEFAULT_SPEED_PER_S:g})",
    )
    parser.add_argument(
        "--api-token",
        default=os.environ.get(TOKEN_ENV, "test-token"),
        help=f"the valid Api-Token (default: ${TOKEN_ENV} or 'test-token')",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then return 0; 1 when the port cannot be bound."""
    args = _parser().parse_args(argv)
    stop_requested = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop_requested.set()

    # Handlers go in before the server starts: signal.signal() raises outside the main
    # thread, and then nothing must be left serving.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            emulator = FakeActiveCampaign(
                args.host,
                args.port,
                api_token=args.api_token,
                rate_limit=args.rate_limit,
                latency_ms=args.latency_ms,
                error_rate=args.error_rate,
                seed=args.seed,
                bulk_speed_per_s=args.bulk_speed,
            ).start()
        except (OSError, ValueError) as exc:
            failure = {"event": "fake_activecampaign.failed", "error": str(exc)}
            print(json.dumps(failure), file=sys.stderr)
            return 1
        try:
            listening = {"event": "fake_activecampaign.listening", "url": emulator.url}
            print(json.dumps(listening), flush=True)
            # Poll the flag with sleep rather than Event.wait(): the handler runs in this
            # thread, and set() inside a handler that interrupted wait() could deadlock.
            while not stop_requested.is_set():
                time.sleep(_SIGNAL_POLL_S)
        finally:
            emulator.stop()
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, handler)
    return 0
