"""Simulated LL-HLS players that behave like hls.js in low-latency mode (used by
tests/integration/test_edge.py and bench/viewers.py).

Each player: loads the multivariant playlist, then the media playlist, then loops: fetch the
newest part it has not fetched yet, then a blocking reload for the part after it
(``_HLS_msn``/``_HLS_part``, rfc8216bis §6.2.5.2). With ``preload`` it also requests the part
named by EXT-X-PRELOAD-HINT right away, as hls.js does. Like the watch page it sends its
player id with media requests and a viewing beacon every 5 s.

Each player can bind its own loopback source address (127.0.0.x), so the server and an edge
see distinct viewers as they would on the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

PART_RE = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="part-(\d+)-(\d+)\.m4s"')
PDT_RE = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")
HINT_RE = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part-\d+-\d+\.m4s)"')
EXTINF_RE = re.compile(r"#EXTINF:([0-9.]+),")
BEACON_SECONDS = 5.0


@dataclass
class PlayerStats:
    """What one player saw."""

    parts: int = 0
    bytes: int = 0
    errors: int = 0
    lags: list[float] = field(default_factory=list)
    """Seconds between a part's media end (PDT + durations) and when the player had it."""
    ttfb: list[float] = field(default_factory=list)
    """Seconds to the first byte of each part response."""
    names: set[str] = field(default_factory=set)


def live_edge(text: str) -> tuple[int, int, float] | None:
    """(msn, part index, wall-clock end of its media) of the newest part in a playlist."""
    last_pdt = None
    end = 0.0
    newest: tuple[int, int] | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            stamp = line.split(":", 1)[1].replace("Z", "+00:00")
            last_pdt = datetime.fromisoformat(stamp).timestamp()
            end = last_pdt
        elif m := PART_RE.match(line):
            end += float(m[1])
            newest = (int(m[2]), int(m[3]))
    if newest is None or last_pdt is None:
        return None
    return newest[0], newest[1], end


async def play(base: str, sid: str, stop: asyncio.Event, stats: PlayerStats, *,
               source: str | None = None, preload: bool = False,
               beacon: bool = True, user_agent: str | None = None,
               mark_playlists: bool = False) -> None:
    """Run one player against ``base`` (origin or edge) until ``stop`` is set (``user_agent``:
    a browser's, else aiohttp's own, which analytics counts as a bot; ``mark_playlists``: send
    the player id with playlist requests too, as the watch page's hls.js does)."""
    connector = aiohttp.TCPConnector(limit=8, local_addr=(source, 0) if source else None,
                                     force_close=False)
    player_id = secrets.token_hex(12)
    timeout = aiohttp.ClientTimeout(total=20)
    headers = {"User-Agent": user_agent} if user_agent else None
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers=headers) as http:
        media_headers = {"X-Hearth-Player": player_id}
        root = f"{base}/hls/{sid}"

        async def get_text(url: str) -> str | None:
            async with http.get(url, headers=media_headers if mark_playlists else None) as r:
                body = await r.text()
                return body if r.status == 200 else None

        async def fetch_part(name: str, media_end: float | None) -> None:
            t0 = time.monotonic()
            async with http.get(f"{root}/{name}", headers=media_headers) as r:
                first = True
                async for chunk in r.content.iter_any():
                    if first:
                        stats.ttfb.append(time.monotonic() - t0)
                        first = False
                    stats.bytes += len(chunk)
                if r.status != 200:
                    stats.errors += 1
                    return
            stats.parts += 1
            stats.names.add(name)
            if media_end is not None:
                stats.lags.append(time.time() - media_end)

        async def beacons() -> None:
            while not stop.is_set():
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.post(f"{base}/api/streams/{sid}/viewing",
                                         params={"player": player_id}) as r:
                        await r.read()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), BEACON_SECONDS)

        beacon_task = asyncio.create_task(beacons()) if beacon else None
        try:
            await get_text(f"{root}/index.m3u8")
            text = await get_text(f"{root}/media.m3u8")
            fetched: set[str] = set()
            while not stop.is_set():
                edge = live_edge(text or "")
                if edge is None:
                    stats.errors += 1
                    await asyncio.sleep(0.2)
                    text = await get_text(f"{root}/media.m3u8")
                    continue
                msn, idx, end = edge
                name = f"part-{msn}-{idx}.m4s"
                jobs = []
                if name not in fetched:
                    fetched.add(name)
                    jobs.append(fetch_part(name, end))
                hint = HINT_RE.search(text or "")
                if preload and hint and hint[1] not in fetched:
                    fetched.add(hint[1])
                    jobs.append(fetch_part(hint[1], None))
                reload = get_text(f"{root}/media.m3u8?_HLS_msn={msn}&_HLS_part={idx + 1}")
                results = await asyncio.gather(*jobs, reload, return_exceptions=True)
                nxt = results[-1]
                if isinstance(nxt, BaseException) or nxt is None:
                    stats.errors += 1
                    await asyncio.sleep(0.1)
                    text = await get_text(f"{root}/media.m3u8")
                else:
                    text = nxt
        except (TimeoutError, aiohttp.ClientError):
            stats.errors += 1
        finally:
            if beacon_task is not None:
                beacon_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beacon_task


async def run_players(base: str, sid: str, n: int, seconds: float, *, preload: bool = False,
                      distinct_sources: bool = True, ramp: float = 1.0,
                      first_source: int = 0) -> list[PlayerStats]:
    """Run ``n`` players for ``seconds`` (joins spread over ``ramp`` seconds); player ``i``
    binds 127.0.x.y number ``first_source + i`` (distinct per process in a multi-process run)."""
    stop = asyncio.Event()
    stats = [PlayerStats() for _ in range(n)]

    async def one(i: int) -> None:
        await asyncio.sleep(ramp * i / max(n, 1))
        k = first_source + i + 2
        source = f"127.0.{k // 250}.{k % 250 + 1}" if distinct_sources else None
        await play(base, sid, stop, stats[i], source=source, preload=preload)

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=30)
    for t in tasks:
        t.cancel()
    return stats
