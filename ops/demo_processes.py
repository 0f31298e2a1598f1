"""Processes for ``make demo``: a throwaway Redis, the emulator and a worker, and their end."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import redis

from worker.redis_client import connect

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/: celery and contact-sync live beside python


class DemoError(Exception):
    """Something the operator must hear about in one line; the demo exits 1."""


def start_private_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server on a free port: loopback only, no persistence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server") or "redis-server"
    process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: answers_ping(url), timeout_s=10, what="the private redis-server")
    return process, url


def answers_ping(url: str) -> bool:
    client = connect(url, timeout_s=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_emulator(rate: float, token: str, log_path: Path) -> tuple[subprocess.Popen[str], str]:
    """``contact-sync fake-activecampaign`` on a free port; returns it and its URL."""
    with log_path.open("w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
            [str(BIN / "contact-sync"), "fake-activecampaign", "--port", "0",
             "--rate-limit", f"{rate:g}", "--api-token", token],
            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
        )  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 15)
    line = process.stdout.readline() if ready else ""
    try:
        return process, str(json.loads(line)["url"])
    except (ValueError, KeyError):
        stop_process(process)
        raise DemoError(f"the emulator did not start; see {log_path}") from None


def start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """One real worker, in its own session so that Ctrl+C reaches only the demo."""
    command = [str(BIN / "celery"), "-A", "worker", "worker", "--concurrency", "2",
               "--without-mingle", "--without-gossip"]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - our own fixed arguments
        command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_until_ready(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    def ready() -> bool:
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with status {worker.returncode}; see {log_path}")
        return b" ready." in log_path.read_bytes()  # Celery's "celery@host ready." line

    wait_for(ready, timeout_s=60, what="the worker's ready line")


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 20) -> None:
    """SIGTERM, wait, then SIGKILL the whole process group (a worker's pool children too)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    if process.stdout is not None:
        process.stdout.close()


def wait_for(predicate: Callable[[], object], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def delete_keys(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix:`` (kombu's queues included), and nothing else."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])
    return len(keys)
