"""The processes a benchmark run owns: redis-server, the emulator and Celery workers.

Everything binds 127.0.0.1 on a free port and runs in its own session, so stopping it
never reaches anything the run did not start.
"""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

__all__ = [
    "Emulator",
    "PrivateRedis",
    "Worker",
    "delete_keys",
    "free_port",
    "stop_workers",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]
_OUR_VARIABLES = ("CONTACT_SYNC_", "ACTIVECAMPAIGN_", "CELERY_", "BENCH_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], *, timeout_s: float, what: str,
             interval_s: float = 0.05) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def _stop(process: subprocess.Popen[Any] | None, timeout_s: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@dataclass
class PrivateRedis:
    """A redis-server of our own: loopback only, no persistence, removed on stop."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.workdir / 'redis.log'}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_for(answers, timeout_s=10, what="the private redis-server")
        finally:
            client.close()
        return self

    def version(self) -> str:
        client = redis.Redis(port=self.port)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def stop(self) -> None:
        _stop(self.process, 10)


@dataclass
class Emulator:
    """``python -m fake_activecampaign`` on a free port, in a process of its own."""

    rate_limit: float
    token: str
    log_path: Path
    process: subprocess.Popen[str] | None = None
    url: str = ""

    def start(self) -> Emulator:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
                [sys.executable, "-m", "fake_activecampaign", "--port", "0",
                 "--rate-limit", f"{self.rate_limit:g}", "--api-token", self.token],
                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
                env=_clean_env(), cwd=REPO,
            )  # fmt: skip
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 20)
        line = self.process.stdout.readline() if ready else ""
        try:
            self.url = str(json.loads(line)["url"])
        except (ValueError, KeyError):
            self.stop()
            raise RuntimeError(f"the emulator did not start; see {self.log_path}") from None
        return self

    def stop(self) -> None:
        _stop(self.process, 10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Worker:
    """One ``celery -A <app> worker`` process; its output goes to ``log_path``."""

    app: str
    name: str
    env: dict[str, str]
    log_path: Path
    concurrency: int = 2
    extra_args: tuple[str, ...] = ()
    # Where the app's package is imported from: another checkout measures "before" against
    # this one in the same run (``python -m ops.bench --worker-code DIR``).
    code_dir: Path = REPO
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> Worker:
        command = [sys.executable, "-m", "celery", "-A", self.app, "worker",
                   "--concurrency", str(self.concurrency), "--hostname", f"{self.name}@bench",
                   "--without-mingle", "--without-gossip", *self.extra_args]  # fmt: skip
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed arguments
            command,
            env={**_clean_env(self.code_dir), **self.env},
            cwd=self.code_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout_s: float = 60) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited; see {self.log_path}")
            return b" ready." in self.log_path.read_bytes()

        wait_for(ready, timeout_s=timeout_s, what=f"worker {self.name}", interval_s=0.1)

    def stop(self, timeout_s: float = 15) -> None:
        _stop(self.process, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.stop()


def stop_workers(workers: list[Worker], timeout_s: float = 15) -> None:
    """SIGTERM every worker at once, then wait: each takes about 2.5 s to stop its prefork
    pool, and in parallel they take it once instead of one after another."""
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        worker.stop(timeout_s)


def _clean_env(code_dir: Path = REPO) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(_OUR_VARIABLES)}  # fmt: skip
    env["PYTHONUNBUFFERED"] = "1"
    # First on the path, so its packages win over the editable install's finder.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), env.get("PYTHONPATH")]))
    return env


def delete_keys(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix:``, and nothing else."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.unlink(*keys[start : start + 500])
    return len(keys)
