"""What the shared rate limiter did, read from Redis MONITOR while a test runs.

Redis runs every command and script one at a time, so MONITOR gives one total order of
every slot the limiter handed out (the ``LPUSH`` inside ``ratelimit.lua``), every pause a
429 caused (``pause.lua``) and every sync that began (``begin.lua``, which names the email).
Positions in that order say exactly what happened before what, with no clock to trust.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import redis

from worker._lua import script_source
from worker.keys import Keys


def _sha(script: str) -> str:
    # The id Redis and redis-py's register_script give the script (EVALSHA).
    source = script_source(script)
    return hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Grant:
    """A send slot: ``order`` is the MONITOR position, ``ms`` the limiter's Redis time."""

    order: int
    time_s: float
    ms: int
    port: str
    email: str | None


@dataclass(frozen=True)
class Pause:
    """One ``pause.lua`` call (one 429 handled): the pause asked for, and the SET if it grew."""

    order: int
    time_s: float
    port: str
    email: str | None
    pause_ms: int
    until_ms: int | None = None


@dataclass
class LimiterAudit:
    """Follows MONITOR in a thread from ``start()`` to ``stop()``; then read the lists."""

    redis_url: str
    keys: Keys
    grants: list[Grant] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> LimiterAudit:
        self._thread = threading.Thread(target=self._run, name="limiter-audit", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("MONITOR did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        # Any command wakes the reader, which then sees the flag.
        with redis.Redis.from_url(self.redis_url) as client:
            client.ping()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        scripts = {_sha(name): name for name in ("begin", "ratelimit", "pause")}
        email_of_port: dict[str, str] = {}  # client port -> email its latest begin.lua named
        current: dict[str, Any] = {}  # our latest EVALSHA, whose inner commands follow it
        with redis.Redis.from_url(self.redis_url) as client, client.monitor() as monitor:
            self._ready.set()
            order = 0
            while not self._stop.is_set():
                command = monitor.next_command()
                order += 1
                words = command["command"].split(" ")
                if command["client_type"] == "lua":
                    self._inner(order, command["time"], words, current)
                    continue
                self._flush(current)
                current = {}
                if len(words) > 4 and words[0].upper() == "EVALSHA" and words[1] in scripts:
                    script, port = scripts[words[1]], command["client_port"]
                    # EVALSHA sha numkeys KEYS... ARGV...: begin.lua's ARGV[1] is the email.
                    email = words[3 + int(words[2])] if len(words) > 3 + int(words[2]) else ""
                    if script == "begin" and words[3] == self.keys.contact(email):
                        email_of_port[port] = email
                    if words[3] in (self.keys.rate_log, self.keys.rate_pause):
                        current = {
                            "script": script,
                            "order": order,
                            "time_s": command["time"],
                            "port": port,
                            "email": email_of_port.get(port),
                            "words": words,
                        }
            self._flush(current)

    def _inner(self, order: int, time_s: float, words: list[str], current: dict[str, Any]) -> None:
        script = current.get("script")
        if script == "ratelimit" and words[0] == "LPUSH" and words[1] == self.keys.rate_log:
            self.grants.append(
                Grant(order, time_s, int(words[2]), current["port"], current["email"])
            )
        elif script == "pause" and words[0] == "TIME":
            current["ran"] = True  # not a NOSCRIPT reply that redis-py retries
        elif script == "pause" and words[0] == "SET" and words[1] == self.keys.rate_pause:
            current["until_ms"] = int(words[2])

    def _flush(self, current: dict[str, Any]) -> None:
        if current.get("script") == "pause" and current.get("ran"):
            self.pauses.append(
                Pause(
                    current["order"],
                    current["time_s"],
                    current["port"],
                    current["email"],
                    int(current["words"][4]),
                    current.get("until_ms"),
                )
            )
