"""Cost of analytics on the request path: microseconds per media request, beside the viewer
counter the same request already pays (appliance/viewers.py).

Method. In one process, N simulated sessions (``--sessions``) each make ``--requests``
part requests in round-robin order, as LL-HLS players at one part per second would. For each
request the bench runs what ``appliance/api/hls.py`` runs: the session key (HMAC), the viewer
counter (``ViewerCounter.seen``), and, with analytics, ``AnalyticsService.hls_hit`` (a known
session: one dict lookup and two float stores; a new one: UA classification and the daily
keyed hash). Then one flush (the minute's work: expire, account, finalize minutes), timed
apart. Prints numbers, asserts nothing; note ``uptime``: the machine is shared.

    python bench/analytics_hits.py [--sessions 2000] [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import time

from appliance.analytics.tracker import AnalyticsTracker
from appliance.api.schema import PlayerKind
from appliance.viewers import ViewerCounter, ViewerTokens

UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/126.0.0.0 Safari/537.36")


def run(sessions: int, requests: int, analytics: bool) -> tuple[float, float]:
    now = [1_800_000_000.0]
    tokens = ViewerTokens()
    counter = ViewerCounter(clock=lambda: now[0], per_address=10**9)
    tracker = AnalyticsTracker(lambda: now[0], max_sessions=10**9)
    addresses = [f"198.51.{i // 250}.{i % 250}" for i in range(sessions)]
    t0 = time.perf_counter()
    for _ in range(requests):
        now[0] += 1.0
        for addr in addresses:
            session = tokens.session_key(addr, UA, None)
            if counter.seen(session, tokens.address_key(addr)) and analytics:
                tracker.hit("b1", session, PlayerKind.HLS, addr, UA)
    per_request = (time.perf_counter() - t0) / (sessions * requests) * 1e6
    t1 = time.perf_counter()
    tracker.flush()
    return per_request, (time.perf_counter() - t1) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    base, _ = run(args.sessions, args.requests, analytics=False)
    with_a, flush_ms = run(args.sessions, args.requests, analytics=True)
    print(f"{args.sessions} sessions × {args.requests} requests")
    print(f"  session key + viewer counter      {base:6.2f} µs/request")
    print(f"  … + analytics hit                 {with_a:6.2f} µs/request "
          f"(+{with_a - base:.2f} µs)")
    print(f"  one flush of {args.sessions} open sessions   {flush_ms:6.1f} ms (once a minute)")


if __name__ == "__main__":
    main()
