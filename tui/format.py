"""Small, pure formatters for figures shown on the dashboard (no clock reads here)."""

from __future__ import annotations

import time

from rich.text import Text

from appliance.api.schema import AdminStream, IngestInfo


def clock_time(ts: float) -> str:
    """``HH:MM:SS`` in the terminal's local time zone."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def when(ts: float) -> str:
    """``Fri 04 Dec 20:00`` in the terminal's local time zone (a planned start)."""
    return time.strftime("%a %d %b %H:%M", time.localtime(ts))


def channel_status(stream: AdminStream) -> str:
    """The status column of a channel: ``live``, ``planned`` (a broadcast is scheduled) or
    ``off air`` (channels do not end; their broadcasts do)."""
    if stream.status == "live":
        return "live"
    return "planned" if stream.next_planned_at is not None else "off air"


def duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02}:{sec:02}" if h else f"{m}:{sec:02}"


def ago(now: float, ts: float | None) -> str:
    """``12s ago`` style age of ``ts`` at ``now``; ``never`` when unknown."""
    if ts is None:
        return "never"
    d = max(0.0, now - ts)
    if d < 60:
        return f"{int(d)}s ago"
    if d < 3600:
        return f"{int(d // 60)}m ago"
    return f"{int(d // 3600)}h ago"


def uptime(stream: AdminStream, now: float) -> str:
    if stream.status != "live" or stream.started_at is None:
        return "-"
    return duration(now - stream.started_at)


def health(stream: AdminStream, now: float) -> str:
    """One word for the health column (``ok``, ``warn``, ``B-frames``, ``waiting 12s``…)."""
    if stream.status != "live":
        return "idle"
    ingest = stream.ingest
    if ingest is None:
        if stream.grace_until is not None:
            return f"waiting {int(max(0.0, stream.grace_until - now))}s"
        return "no input"
    if ingest.verdict == "ok" and ingest.bframes:
        return "B-frames"
    return ingest.verdict


def ingest_source(ingest: IngestInfo) -> Text:
    """How and from where the publisher sends, e.g. ``WHIP from 192.0.2.10`` (the port
    dropped; just ``from …`` from a server too old to say the protocol). Text, never markup:
    both parts come from the appliance."""
    host = ingest.remote.rpartition(":")[0] or ingest.remote
    proto = f"{ingest.protocol.upper()} " if ingest.protocol else ""
    return Text(f"{proto}from {host}")


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def resolution(stream: AdminStream) -> str:
    i = stream.ingest
    if i is None or not i.width or not i.height:
        return "-"
    return f"{i.width}x{i.height}"


def short_key(pubkey: str) -> str:
    return pubkey[:8] if len(pubkey) > 8 else pubkey
