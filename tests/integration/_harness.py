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


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def child_pids(pid: int) -> list[int]:
    """The running children of ``pid`` (``ps --ppid``), zombies left out."""
    listing = subprocess.run(
        ["ps", "--ppid", str(pid), "-o", "pid=,stat="], capture_output=True, text=True, check=False
    ).stdout
    rows = (line.split() for line in listing.splitlines() if line.strip())
    return [int(child) for child, stat in rows if not stat.startswith(("Z", "X"))]


def drained(client: redis.Redis, keys: Keys) -> bool:
    """Nothing left to do: stream empty, nothing scheduled, nothing leased."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.events)
    pipe.zcard(keys.due)
    pipe.zcard(keys.leases)
    pipe.zcard(keys.bulk_leases)
    pipe.zcard(keys.bulk_batches)
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

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"worker {self.name} was never started")
        return self.process.pid

    def pool_pids(self) -> list[int]:
        """The pool children of the main process that are still running."""
        return child_pids(self.pid)

    def kill_main(self, *, children_timeout_s: float = 10.0) -> list[int]:
        """SIGKILL the main process only, as ``kill -9 PID`` or the OOM killer would.

        Returns the pool children still running ``children_timeout_s`` later. Celery's prefork
        children ask the kernel for SIGKILL when their parent dies (``PR_SET_PDEATHSIG``), so
        the list should be empty; any survivor is killed afterwards so no test leaves one behind.
        """
        children = self.pool_pids()
        os.kill(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(5)
        deadline = time.monotonic() + children_timeout_s
        while any(pid_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid in children if pid_alive(pid)]
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        return survivors

    def output(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """Every complete line the worker printed, parsed (a non-JSON line raises: all must be JSON).

        A line still being written (no newline yet) is left for the next call.
        """
        text = self.output()
        complete = text[: text.rfind("\n") + 1]
        # Split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 and the like,
        # which JSON leaves unescaped inside strings (a fuzzed field name, say).
        return [json.loads(line) for line in complete.split("\n") if line.strip()]

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
