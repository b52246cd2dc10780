"""The caching edge: Debian's nginx with deploy/nginx-edge.conf in front of a real Hearth, an
ffmpeg publisher, and 100 simulated LL-HLS players (blocking reload + part fetch, each from its
own loopback address, beaconing like the watch page)."""

from __future__ import annotations

import asyncio
import re
import statistics

import pytest

from tests.helpers.appliance import ApplianceProcess, http_get
from tests.helpers.llhls_players import run_players
from tests.helpers.nginx_edge import NGINX, nginx_edge
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

pytestmark = pytest.mark.skipif(FFMPEG is None or NGINX is None,
                                reason="needs ffmpeg and nginx")

PLAYERS = 100
SECONDS = 14.0


def _origin_requests(app: ApplianceProcess) -> dict[str, int]:
    text = app.get("/metrics").text
    return {m[1]: int(m[2]) for m in re.finditer(
        r'hearth_hls_requests_total\{kind="([a-z]+)"\} (\d+)', text)}


@pytest.fixture
def origin(data_dir: object) -> ApplianceProcess:
    # A latency measurement under load: no asyncio debug instrumentation in the origin (every
    # other integration test keeps it). Any non-empty PYTHONASYNCIODEBUG, "0" included, turns
    # debug mode on; the empty string turns it off.
    app = ApplianceProcess(data_dir, {  # type: ignore[arg-type]
        "PYTHONASYNCIODEBUG": "", "HEARTH_LOG_LEVEL": "INFO",
        "HEARTH_RTMP_GRACE_SECONDS": "30",
    })
    app.start()
    yield app  # type: ignore[misc]
    app.stop()


def test_edge_collapses_llhls_requests(origin: ApplianceProcess) -> None:
    """About one origin request per (msn, part) for 100 players; players within 1.5 s of live;
    the origin counts exactly the 100 viewers (beacons pass the cache, one per player)."""
    created = origin.create_stream("edge")
    sid = created["id"]
    pub = ffmpeg_publish(f"{origin.rtmp_base}/{created['stream_key']}", 60, gop=50)
    try:
        origin.wait_for(lambda: origin.playlist(sid), timeout=20)
        with nginx_edge(f"127.0.0.1:{origin.http_port}") as edge:
            assert http_get(f"{edge.base}/hls/{sid}/index.m3u8").status == 200
            before = _origin_requests(origin)
            stats = asyncio.run(run_players(edge.base, sid, PLAYERS, SECONDS, ramp=2.0),
                                debug=False)  # the players too (.ci/run sets debug mode)
            after = _origin_requests(origin)
            viewers = origin.get(f"/api/streams/{sid}").json()["viewers"]
            log = edge.access_log()
            error_log = edge.error_log()

        parts_seen = set().union(*(s.names for s in stats))
        origin_parts = after.get("part", 0) - before.get("part", 0)
        origin_playlists = after.get("playlist", 0) - before.get("playlist", 0)
        fetched = sum(s.parts for s in stats)
        print(f"\nplayers {PLAYERS}: {fetched} part fetches of {len(parts_seen)} parts; origin "
              f"saw {origin_parts} part and {origin_playlists} playlist requests; "
              f"edge log {len(log)} lines; viewers {viewers}")
        assert all(s.parts > 0 for s in stats), "every player got parts"
        assert fetched >= PLAYERS * len(parts_seen) * 0.5
        # ~1 origin request per part per edge (a few extra when a lock times out)
        assert origin_parts <= len(parts_seen) * 1.3 + 5, (origin_parts, len(parts_seen))
        # blocking playlists: one per (msn, part) key, plus joins and plain reloads
        assert origin_playlists <= len(parts_seen) * 2.5 + PLAYERS // 4, origin_playlists
        # Players stay within 1.5 s of live (after their first second). Judged per player (its
        # median lag), because the 100 simulated players share this box's 2 cores with nginx,
        # Hearth and ffmpeg: a moment's CPU starvation of the test process delays every
        # player's next fetch at once and says nothing about the edge. A player left behind
        # (an edge serving stale parts) is behind in most of its samples and still fails this.
        lags = [lag for s in stats for lag in s.lags[5:]]
        p95 = statistics.quantiles(lags, n=20)[-1]
        per_player = sorted(statistics.median(s.lags[5:]) for s in stats if s.lags[5:])
        print(f"lag to live: median {statistics.median(lags):.3f} s, p95 {p95:.3f} s; "
              f"worst player median {per_player[-1]:.3f} s")
        assert len(per_player) == PLAYERS
        assert per_player[int(0.95 * PLAYERS) - 1] <= 1.5, per_player[-10:]
        # honest: every player counted once, nobody twice, the edge not as a viewer
        assert viewers == PLAYERS, viewers
        assert "[emerg]" not in error_log and "[crit]" not in error_log, error_log[-2000:]
    finally:
        pub.kill()
        pub.wait(10)
