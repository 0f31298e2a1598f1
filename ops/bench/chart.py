"""The PNG: API requests over time (naive vs contact-sync), and the backlog vs the ideal.

``python -m ops.bench.chart [bench-results.json] [out.png]`` redraws it from a results file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["draw", "main"]

# The limiter's window is 1 s plus CONTACT_SYNC_RATE_MARGIN_MS (50 ms by default).
_MARGIN_MS = 50


def draw(path: Path, *, cs: dict[str, Any], naive: dict[str, Any], rate: float,
         title: str) -> Path:  # fmt: skip
    """Two panels from the raw data of ``contact_sync_workload`` and ``naive_workload``."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to the file
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8.5))
    naive_t = [s["t"] for s in naive["series"]]
    top.plot(naive_t, [s["requests"] for s in naive["series"]], color="tab:red",
             label="naive: all requests (incl. 429)")  # fmt: skip
    top.plot(naive_t, [s["ok"] for s in naive["series"]], color="tab:red", linestyle="--",
             label="naive: 2xx")  # fmt: skip
    top.plot(naive_t, [s["rate_limited"] for s in naive["series"]], color="tab:orange",
             linestyle=":", label="naive: 429")  # fmt: skip
    cs_t = [s["t"] for s in cs["series"]]
    top.plot(cs_t, [s["requests"] for s in cs["series"]], color="tab:blue", linewidth=2,
             label="contact-sync: all requests")  # fmt: skip
    for n, start in enumerate(cs["phase_starts_s"], 1):
        top.axvline(start, color="tab:blue", alpha=0.3, linestyle="--")
        top.annotate(f"contact-sync phase {n} sent", (start, 0), rotation=90, fontsize=8,
                     color="tab:blue", xytext=(3, 5), textcoords="offset points")  # fmt: skip
    top.set_xlabel("seconds since the first event was sent")
    top.set_ylabel("API requests (cumulative)")
    top.set_title("API requests for the same workload", fontsize=10)
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)

    arrivals = sorted(cs["phase1_arrivals_s"])
    emails = len(arrivals)
    start = arrivals[0]
    remaining = [emails - n for n in range(1, emails + 1)]
    bottom.step([t - start for t in arrivals], remaining, where="post", color="tab:blue",
                linewidth=2, label="contact-sync: emails not yet synced")  # fmt: skip
    ideal_end = emails / rate
    bottom.plot([0, ideal_end], [emails, 0], color="black", linestyle="--",
                label=f"ideal: {emails:,} emails at {rate:g}/s = {ideal_end:.1f} s")  # fmt: skip
    ceiling = rate * 1000 / (1000 + _MARGIN_MS)
    bottom.plot([0, emails / ceiling], [emails, 0], color="grey", linestyle=":",
                label=f"limiter ceiling: {rate:g} per {1000 + _MARGIN_MS} ms = "
                      f"{emails / ceiling:.1f} s")  # fmt: skip
    bottom.set_xlabel("seconds since the backlog's first request")
    bottom.set_ylabel("backlog (emails)")
    bottom.set_title("Phase-1 backlog draining against the rate limit", fontsize=10)
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0] if args else "bench-results.json")
    result = json.loads(source.read_text())
    scale = result["scale"]
    target = Path(args[1]) if len(args) > 1 else Path("docs/perf") / f"bench-{result['mode']}.png"
    draw(target, cs=result["raw"]["cs"], naive=result["raw"]["naive"], rate=scale["rate"],
         title=chart_title(result["mode"], scale))  # fmt: skip
    print(f"wrote {target}")
    return 0


def chart_title(mode: str, scale: dict[str, Any]) -> str:
    return (
        f"contact-sync vs one Celery task per event ({mode} run, "
        f"{scale['workload_events']:,} events / {scale['workload_emails']:,} emails, "
        f"{scale['rate']:g} requests/s)"
    )


if __name__ == "__main__":
    sys.exit(main())
