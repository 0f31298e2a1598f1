"""Pure arithmetic behind the figures: percentiles, rates, ideal times and the table."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Figure",
    "budget_use",
    "drain_ratio",
    "format_table",
    "ideal_drain_s",
    "longest_stall_s",
    "max_in_window",
    "percentile",
    "span_rate",
    "steady_throughput",
    "windowed_rate",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    Same definition as numpy's default ("linear"); raises ValueError on no values.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ideal_drain_s(emails: int, *, rate_per_s: float) -> float:
    """The shortest time to send one request per email at ``rate_per_s``: emails / rate."""
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    return emails / rate_per_s


def drain_ratio(arrivals_s: Sequence[float], *, rate_per_s: float) -> float:
    """Time the backlog took over the ideal time (emails / rate).

    The backlog's time runs from the first request's arrival to the last one's, plus the
    one slot (1 / rate) the last request occupies, so a sender that keeps exactly ``rate``
    per second scores 1.0.
    """
    if not arrivals_s:
        raise ValueError("no requests")
    span_s = max(arrivals_s) - min(arrivals_s) + 1.0 / rate_per_s
    return span_s / ideal_drain_s(len(arrivals_s), rate_per_s=rate_per_s)


def windowed_rate(arrivals_s: Sequence[float], *, window_s: float = 1.0) -> float:
    """Mean number of arrivals per ``window_s`` over every window inside the arrivals' span.

    This is how the API's limiter sees traffic: it averages ``count(t <= x < t + window)``
    over every start ``t`` from the first arrival to the last one minus a window, in closed
    form (each arrival counts for the stretch of starts whose window holds it). A burst
    sender and a smooth sender at the same sustained rate get the same figure, and a sender
    that never overruns the API's window can never score above its limit.
    Returns requests per ``window_s``; raises ValueError when the span is shorter than 2
    windows.
    """
    if not arrivals_s:
        raise ValueError("no arrivals")
    first, last = min(arrivals_s), max(arrivals_s)
    starts_end = last - window_s
    if starts_end - first < window_s:
        raise ValueError("the arrivals span less than two windows")
    covered = 0.0
    for arrival in arrivals_s:
        # Window starts t with t <= arrival < t + window: t in (arrival - window, arrival].
        low, high = max(arrival - window_s, first), min(arrival, starts_end)
        covered += max(0.0, high - low)
    return covered / (starts_end - first)


def budget_use(arrivals_s: Sequence[float], *, rate_per_s: float) -> float:
    """Achieved rate over the limit while the backlog lasted (1.0 = every slot used)."""
    return windowed_rate(arrivals_s, window_s=1.0) / rate_per_s


def steady_throughput(samples: Sequence[tuple[float, int]], *, total: int) -> float:
    """Items/s from polled ``(time_s, items done)`` samples, first progress to completion.

    Starts at the first sample that shows progress, so start-up time (process start, the
    first poll) is not counted; ends at the first sample that reached ``total``.
    """
    started = next(((t, n) for t, n in samples if n > 0), None)
    finished = next(((t, n) for t, n in samples if n >= total), None)
    if started is None or finished is None or finished[0] <= started[0]:
        raise ValueError("the samples do not show progress to completion")
    return (finished[1] - started[1]) / (finished[0] - started[0])


@dataclass(frozen=True)
class Figure:
    """One row of the table: what was measured, the target, and whether it was met."""

    key: str
    name: str
    measured: str
    target: str
    passed: bool | None  # None: informational, no target
    values: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "target": self.target,
            "passed": self.passed,
            **self.values,
        }


def format_table(figures: Sequence[Figure], *, markdown: bool = False) -> str:
    """The figures as a fixed-width text table, or as a Markdown table."""
    rows = [("figure", "measured", "target", "result")]
    for figure in figures:
        verdict = "-" if figure.passed is None else ("pass" if figure.passed else "FAIL")
        rows.append((figure.name, figure.measured, figure.target, verdict))
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                  for row in rows[1:]]  # fmt: skip
        return "\n".join(lines)
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def span_rate(arrivals_s: Sequence[float]) -> float:
    """Items/s from the first arrival to the last: the ``n - 1`` after the first over the span.

    Counting from the first arrival, not from a start signal, leaves out whatever came before
    the work (a debounce, a queue filling); raises ValueError for fewer than two arrivals or
    a span of zero.
    """
    if len(arrivals_s) < 2:
        raise ValueError("a rate needs at least two arrivals")
    span_s = max(arrivals_s) - min(arrivals_s)
    if span_s <= 0:
        raise ValueError("the arrivals span no time")
    return (len(arrivals_s) - 1) / span_s


def longest_stall_s(samples: Sequence[tuple[float, int]]) -> float:
    """The longest time between polled ``(time_s, items done)`` samples with no progress."""
    longest = stall = 0.0
    for (t1, done1), (t2, done2) in itertools.pairwise(samples):
        stall = stall + (t2 - t1) if done2 == done1 else 0.0
        longest = max(longest, stall)
    return longest


def max_in_window(arrivals_s: Sequence[float], *, window_s: float = 1.0) -> int:
    """The most arrivals within any ``window_s``: as a sliding-window limiter counts them.

    Two arrivals share a window when they are less than ``window_s`` apart (the emulator
    forgets an arrival exactly ``window_s`` after it), so 5 requests a second sent every
    200 ms score 5, not 6. Order does not matter; no arrivals score 0.
    """
    ordered = sorted(arrivals_s)
    most = first = 0
    for last, arrival in enumerate(ordered):
        while arrival - ordered[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most
