"""Loading the Lua scripts shipped in ``worker/lua/``: one place for the store and the limiter."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis

__all__ = ["load_script", "script_source"]

# Every script gets _common.lua in front (the Redis clock, dead-letter bounds); those that
# read or write contact hashes get the layout's definitions too. Redis scripts cannot
# import one another.
_WITH_LAYOUT = frozenset({"ingest", "begin", "finish"})


@cache
def _file(name: str) -> str:
    return resources.files("worker").joinpath("lua", f"{name}.lua").read_text("utf-8")


def script_source(name: str) -> str:
    """The source Redis runs for ``worker/lua/<name>.lua`` (its SHA1 is the EVALSHA id)."""
    parts = ["_common", "_layout", name] if name in _WITH_LAYOUT else ["_common", name]
    return "\n".join(_file(part) for part in parts)


def load_script(client: redis.Redis, name: str) -> Any:
    """``worker/lua/<name>.lua`` registered on ``client`` (run by SHA, loaded on first use)."""
    return client.register_script(script_source(name))
