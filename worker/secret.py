"""The API token: held so that it never shows, and read again from its file when rotated.

``Secret`` wraps a token given directly; ``TokenFile`` wraps a token file and re-reads it
when the file changes (checked at most once a second), so a rotated token takes effect
without a restart. Both only give the token out through ``reveal()``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from worker.errors import ConfigError

__all__ = ["Secret", "Token", "TokenFile", "check_token_text"]


class Token(Protocol):
    def reveal(self) -> str: ...


class Secret:
    """Holds the API token so that repr(), str() and tracebacks never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would put the token into a message or a dump; refuse it outright.
        raise TypeError("Secret cannot be pickled")


def check_token_text(variable: str, text: str) -> str:
    """The token, or ConfigError naming ``variable`` (never quoting the token)."""
    # Printable ASCII only: http.client sends headers as latin-1, and a character outside
    # it raised UnicodeEncodeError from inside urllib3, whose args and frames hold the token.
    if not all(ch.isascii() and ch.isprintable() and not ch.isspace() for ch in text):
        raise ConfigError(
            variable, "must be printable ASCII, without white space or control characters"
        )
    return text


class TokenFile:
    """A token read from a file, and read again once the file changes.

    The first read happens here and raises ``ConfigError`` naming ``variable``. Later, at
    most once per ``check_every_s``, ``reveal()`` compares the file's identity (inode, size,
    modification time) and reads it again if it changed; a file that cannot be read or
    holds no valid token then keeps the previous token and calls ``on_unreadable`` (once per
    distinct problem, not once a second).
    ``on_new`` sees every token this object ever holds (the logs redact each of them).
    """

    def __init__(
        self,
        path: str,
        *,
        variable: str,
        check_every_s: float = 1.0,
        on_new: Callable[[str], object] = lambda token: None,
        on_unreadable: Callable[[str], object] = lambda problem: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.variable = variable
        self._check_every_s = check_every_s
        self._on_new = on_new
        self._on_unreadable = on_unreadable
        self._clock = clock
        self._lock = threading.Lock()
        self._identity, self._value = self._read()
        self._seen = [self._value]
        self._problem: str | None = None
        self._checked_at = clock()

    def reveal(self) -> str:
        if self._clock() - self._checked_at >= self._check_every_s:
            with self._lock:
                self._refresh()
        return self._value

    def seen(self) -> list[str]:
        """Every token this file has held, oldest first."""
        return list(self._seen)

    def _refresh(self) -> None:
        self._checked_at = self._clock()
        try:
            if _identity(self.path) == self._identity:
                return
            self._identity, value = self._read()
        except OSError as exc:
            self._unreadable(f"cannot read {self.path}: {exc.strerror}")
            return
        except ConfigError as exc:
            self._unreadable(exc.problem)
            return
        self._problem = None
        if value != self._value:
            self._value = value
            self._seen.append(value)
            self._on_new(value)

    def _unreadable(self, problem: str) -> None:
        if problem != self._problem:
            self._problem = problem
            self._on_unreadable(problem)

    def _read(self) -> tuple[tuple[int, int, int], str]:
        try:
            identity = _identity(self.path)
            text = Path(self.path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(self.variable, f"cannot read {self.path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(self.variable, f"{self.path} is not UTF-8 text") from None
        if not text:
            raise ConfigError(self.variable, f"{self.path} is empty")
        return identity, check_token_text(self.variable, text)

    def __repr__(self) -> str:
        return f"TokenFile({self.path!r}, <redacted>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenFile) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("TokenFile cannot be pickled")


def _identity(path: str) -> tuple[int, int, int]:
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns
