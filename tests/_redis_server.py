"""Start a private redis-server on a free port, so tests never touch shared services."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server process owned by the caller. ``stop()`` kills it and removes its files."""

    port: int = field(default_factory=free_port)
    appendonly: bool = False
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cs-redis-")))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    # Our server exited (e.g. the port was taken): never talk to someone else's.
                    break
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, *, keep_files: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if not keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


def redis_required() -> bool:
    """In CI a missing redis-server is a failure; elsewhere the tests that need it skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def sentinel_command(config: Path) -> list[str]:
    """How to run a sentinel: ``redis-sentinel <config>`` when it is on PATH, else
    ``redis-server <config> --sentinel``. Sentinel mode is built into redis-server; Debian's
    redis-sentinel package only adds a symlink (and a service) to the same binary."""
    sentinel = shutil.which("redis-sentinel")
    if sentinel is not None:
        return [sentinel, str(config)]
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("neither redis-sentinel nor redis-server is installed")
    return [server, str(config), "--sentinel"]


@dataclass
class SentinelServer:
    """A sentinel process watching ``master_port`` as ``master_name``, on a free port."""

    master_port: int
    master_name: str
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cs-sentinel-")))

    def start(self, timeout_s: float = 10.0) -> SentinelServer:
        return self.launch().wait_ready(timeout_s)

    def launch(self) -> SentinelServer:
        """Start the process without waiting for it to answer (``wait_ready``)."""
        # The sentinel rewrites this file as it learns the deployment: it must be writable.
        config = self.workdir / "sentinel.conf"
        name = self.master_name
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.workdir}\n"
            f"logfile {self.workdir / 'sentinel.log'}\n"
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        self.process = subprocess.Popen(
            sentinel_command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def wait_ready(self, timeout_s: float = 10.0) -> SentinelServer:
        assert self.process is not None, "launch() first"
        if not _answers(self.port, self.process, timeout_s):
            self.stop()
            raise RuntimeError(f"redis sentinel did not start on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class SentinelCluster:
    """A master, its replicas and the sentinels watching them: private processes on free
    ports of 127.0.0.1, with short failure detection (``down_after_ms``)."""

    replicas: int = 1
    sentinels: int = 3
    master_name: str = "cs-master"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    servers: list[RedisServer] = field(default_factory=list)  # [0] is the first master
    watchers: list[SentinelServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The one CONTACT_SYNC_REDIS_URL for producers, workers and the broker."""
        hosts = ",".join(f"127.0.0.1:{watcher.port}" for watcher in self.watchers)
        return f"sentinel://{hosts}/{self.master_name}/0"

    def start(self, timeout_s: float = 20.0) -> SentinelCluster:
        try:
            self.servers.extend(start_replicated(self.replicas, timeout_s=timeout_s))
            master = self.servers[0]
            for _ in range(self.sentinels):
                watcher = SentinelServer(
                    master.port,
                    self.master_name,
                    quorum=self.sentinels // 2 + 1,
                    down_after_ms=self.down_after_ms,
                    failover_timeout_ms=self.failover_timeout_ms,
                )
                self.watchers.append(watcher.launch())
            for watcher in self.watchers:
                watcher.wait_ready()
            # Sentinels find each other through the master (a hello every 2 s); a failover
            # needs a majority of them to know each other, and the replicas to be known.
            _wait(self._watching, timeout_s, "sentinels that see each other and the replicas")
        except BaseException:
            self.stop()
            raise
        return self

    def _watching(self) -> bool:
        for watcher in self.watchers:
            client = watcher.client()
            try:
                state = client.sentinel_master(self.master_name)
            except redis.RedisError:
                return False
            finally:
                client.close()
            if state["num-other-sentinels"] < self.sentinels - 1:
                return False
            if state["num-slaves"] < self.replicas:
                return False
        return True

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels name it, or None."""
        votes: dict[int, int] = {}
        for watcher in self.watchers:
            client = watcher.client()
            try:
                address = client.sentinel_get_master_addr_by_name(self.master_name)
            except redis.RedisError:
                continue
            finally:
                client.close()
            if address:
                votes[int(address[1])] = votes.get(int(address[1]), 0) + 1
        best = max(votes.items(), key=lambda item: item[1], default=None)
        return best[0] if best and best[1] > len(self.watchers) // 2 else None

    def replica_count(self) -> int:
        """Replicas online (in sync) under the master the sentinels name now."""
        port = self.master_port()
        if port is None:
            return 0
        client = redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return 0
        finally:
            client.close()
        return sum(
            1
            for name, value in info.items()
            if name.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        )

    def server_on(self, port: int) -> RedisServer:
        (server,) = [server for server in self.servers if server.port == port]
        return server

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        for server in self.servers:
            server.stop()


def start_replicated(replicas: int, *, timeout_s: float = 20.0) -> list[RedisServer]:
    """A master and ``replicas`` replicas of it, in sync: ``[master, replica, ...]``.

    The caller stops them (``stop()`` each); on failure they are stopped here.
    """
    # Full syncs start at once, not after Redis's 5 s wait for more replicas to join.
    no_delay = ("--repl-diskless-sync-delay", "0")
    servers: list[RedisServer] = []
    try:
        servers.append(RedisServer(extra_args=no_delay).start())
        replica_of = ("--replicaof", "127.0.0.1", str(servers[0].port))
        for _ in range(replicas):
            servers.append(RedisServer(extra_args=no_delay + replica_of).start())
        for replica in servers[1:]:
            _wait(lambda r=replica: _replica_in_sync(r.port), timeout_s, "a replica in sync")
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def _answers(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    return False


def _replica_in_sync(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        return client.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)
