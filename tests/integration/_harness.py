"""Real parts for integration tests: Celery worker processes and polling helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from worker.keys import Keys

TOKEN = "0123456789abcdef-test-token-DO-NOT-LEAK-42"


def wait_until(
    predicate: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.05, message: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message or predicate}")
        time.sleep(interval_s)


def drained(client: redis.Redis, keys: Keys) -> bool:
    """Nothing left to do: stream empty, nothing scheduled, nothing leased."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.events)
    pipe.zcard(keys.due)
    pipe.zcard(keys.leases)
    return sum(pipe.execute()) == 0


@dataclass
class WorkerProcess:
    """One ``celery -A worker worker`` process with its stdout in a file."""

    name: str
    env: dict[str, str]
    log_path: Path
    concurrency: int = 2
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()

    def start(self) -> WorkerProcess:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--concurrency",
            str(self.concurrency),
            "--hostname",
            f"{self.name}@localhost",
            "--without-mingle",
            "--without-gossip",
            *self.extra_args,
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        wait_until(
            lambda: b"ready" in self.log_path.read_bytes() or self._died(),
            timeout_s=timeout_s,
            message=f"{self.name} ready",
        )
        if self._died():
            raise AssertionError(f"worker {self.name} exited:\n{self.output()[-3000:]}")

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and pool children."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def output(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """Every complete line the worker printed, parsed (a non-JSON line raises: all must be JSON).

        A line still being written (no newline yet) is left for the next call.
        """
        text = self.output()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """The log lines whose ``event`` is ``name``."""
        return [line for line in self.log_lines() if line.get("event") == name]


@dataclass
class WorkerPool:
    base_env: Mapping[str, str]
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(
        self, count: int = 1, *, concurrency: int = 2, wait: bool = True, **env: str
    ) -> list[WorkerProcess]:
        started = []
        for _ in range(count):
            name = f"w{len(self.workers) + 1}"
            merged = {**self.base_env, **env}
            worker = WorkerProcess(
                name, merged, self.log_dir / f"{name}.log", concurrency=concurrency
            ).start()
            self.workers.append(worker)
            started.append(worker)
        if wait:
            for worker in started:
                worker.wait_ready()
        return started

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()

    def all_log_lines(self) -> list[dict[str, Any]]:
        return [line for worker in self.workers for line in worker.log_lines()]

    def all_output(self) -> str:
        return "".join(worker.output() for worker in self.workers)
