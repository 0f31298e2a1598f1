"""Loading the Lua scripts shipped in ``worker/lua/``: one place for the store and the limiter."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis

__all__ = ["load_script"]


@cache
def _source(name: str) -> str:
    return resources.files("worker").joinpath("lua", f"{name}.lua").read_text("utf-8")


def load_script(client: redis.Redis, name: str) -> Any:
    """``worker/lua/<name>.lua`` registered on ``client`` (run by SHA, loaded on first use)."""
    return client.register_script(_source(name))
