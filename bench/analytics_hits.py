"""Cost of analytics on the request path: microseconds per media request, beside the viewer
counter the same request already pays (appliance/viewers.py); and what the minute's flush
costs the event loop.

Method. In one process, N simulated sessions (``--sessions``, one run per value) each make
``--requests`` part requests in round-robin order, as LL-HLS players at one part per second
would, each request at its own instant, across a minute boundary. For each request the bench
runs what ``appliance/api/hls.py`` runs: the session key (HMAC), the viewer counter
(``ViewerCounter.seen``), and, with analytics, ``AnalyticsService.hls_hit`` (a known
session: one dict lookup and two float stores; a new one: UA classification and the daily
keyed hash). Then one flush (the minute's work: expire, account, finalize a minute, the
current one provisional) on an event loop as the service runs it, stepped
(``appliance.analytics.service.sliced``), beside a task that only yields: the longest time
between two of its turns is the longest the loop was held (the most any viewer or publisher
waited), and the flush's wall time is its total; the longest garbage collection pass during
the flush is printed apart (a full pass holds the loop in proportion to the whole heap, not
the flush: the flush's allocations only set it off). Prints numbers, asserts nothing; note
``uptime``: the machine is shared.

    python bench/analytics_hits.py [--sessions 2000 20000 100000] [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from typing import Any

from appliance.analytics.service import sliced
from appliance.analytics.tracker import AnalyticsTracker
from appliance.api.schema import PlayerKind
from appliance.viewers import ViewerCounter, ViewerTokens

UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/126.0.0.0 Safari/537.36")
START = 1_800_000_000.0 + 45.0
"""45 s into a minute: 30 requests a session make one final minute and one provisional."""


def run(sessions: int, requests: int, analytics: bool) -> tuple[float, AnalyticsTracker]:
    """µs per request, and the tracker with ``sessions`` open sessions."""
    now = [START]
    tokens = ViewerTokens()
    counter = ViewerCounter(clock=lambda: now[0], per_address=10**9)
    tracker = AnalyticsTracker(lambda: now[0], max_sessions=10**9)
    addresses = [f"198.51.{i // 250}.{i % 250}" for i in range(sessions)]
    t0 = time.perf_counter()
    for _ in range(requests):
        for addr in addresses:
            now[0] += 1.0 / sessions
            session = tokens.session_key(addr, UA, None)
            if counter.seen(session, tokens.address_key(addr)) and analytics:
                tracker.hit("b1", session, PlayerKind.HLS, addr, UA)
    return (time.perf_counter() - t0) / (sessions * requests) * 1e6, tracker


async def timed_flush(tracker: AnalyticsTracker) -> tuple[float, float, float]:
    """(longest loop stall, total, longest garbage collection) of one flush, in ms."""
    longest = 0.0
    flushing = True
    collections = [0.0, 0.0]  # start of the current pass, longest

    def collecting(phase: str, info: dict[str, Any]) -> None:
        t = time.perf_counter()
        if phase == "start":
            collections[0] = t
        else:
            collections[1] = max(collections[1], t - collections[0])

    async def other() -> None:
        nonlocal longest
        last = time.perf_counter()
        while flushing:
            await asyncio.sleep(0)
            t = time.perf_counter()
            longest, last = max(longest, t - last), t

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    gc.callbacks.append(collecting)
    t0 = time.perf_counter()
    await sliced(tracker.flush_steps())
    total = time.perf_counter() - t0
    gc.callbacks.remove(collecting)
    flushing = False
    await task
    return longest * 1e3, total * 1e3, collections[1] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[2000, 20000, 100000])
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    for n in args.sessions:
        base, _ = run(n, args.requests, analytics=False)
        with_a, tracker = run(n, args.requests, analytics=True)
        stall, total, collection = asyncio.run(timed_flush(tracker))
        print(f"{n} sessions × {args.requests} requests")
        print(f"  session key + viewer counter      {base:6.2f} µs/request")
        print(f"  … + analytics hit                 {with_a:6.2f} µs/request "
              f"(+{with_a - base:.2f} µs)")
        print(f"  one flush of {n} open sessions: longest loop stall {stall:6.1f} ms, "
              f"total {total:6.1f} ms (once a minute); longest garbage collection "
              f"{collection:.1f} ms")


if __name__ == "__main__":
    main()
