"""An in-memory :class:`~tui.client.AdminClient` for tests, benches and demos.

It records every call in :attr:`FakeAdminClient.calls` (the intents the dashboard sent), and
lets the test push live events (:meth:`emit`) or cut the socket (:meth:`disconnect`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from appliance.api.schema import (
    AddressBlock,
    AdminEvent,
    AdminRecording,
    AdminStream,
    AdminWebhook,
    AnalyticsMinute,
    AnalyticsSplit,
    BroadcastAnalytics,
    BroadcastAnalyticsLine,
    ChannelAnalytics,
    ChatMessage,
    DeviceClass,
    GrantCreated,
    IngestInfo,
    LogEvent,
    PlayerKind,
    RelayInfo,
    SseParser,
    Status,
    StreamCredentials,
    StreamGoal,
    WebhookState,
    encode_event,
)
from tui.client import ApplianceError, ApplianceUnreachable, StreamDraft, typed_events

if TYPE_CHECKING:
    from textual.pilot import Pilot

T0 = 1_700_000_000.0
"""The frozen 'now' of fixtures (2023-11-14 22:13:20 UTC)."""


def make_stream(n: int, *, status: str = "live", viewers: int = 3, title: str | None = None,
                verdict: str = "ok", publishing: bool = True,
                protocol: str = "rtmp") -> AdminStream:
    """A deterministic stream fixture; live ones carry ingest health figures and a publisher
    on ``protocol`` (rtmp, whip, srt) from 192.0.2.10."""
    sid = f"s{n:011d}"
    ingest = None
    if status == "live" and publishing:
        ingest = IngestInfo(
            connection_id=n, remote="192.0.2.10:50000", connected_at=T0 - 600,
            bitrate_kbps=2500.0 + n, fps=30.0, width=1280, height=720,
            keyframe_interval=2.0 if verdict == "ok" else 8.0, bframes=False,
            video_codec="h264", audio_codec="aac", sample_rate=48000, channels=2,
            verdict=verdict, bytes_in=10_000_000, frames_discarded=0, reconnects=0,
            protocol=protocol)
    return AdminStream(
        id=sid, title=title or f"Stream {n}", summary="", tags=["music"], image="",
        status=status, created_at=T0 - 3600 - n, started_at=T0 - 600 - n * 60
        if status != "created" else None, ended_at=T0 - 60 if status == "ended" else None,
        viewers=viewers if status == "live" else 0, peak_viewers=viewers + 5,
        total_viewers=viewers + 20, watch_url=f"http://box:8080/watch/{sid}",
        hls_url=f"http://box:8080/hls/{sid}/index.m3u8", publishing=ingest is not None,
        grace_until=T0 + 12 if status == "live" and not publishing else None, ingest=ingest)


def make_webhook(n: int, **kw: Any) -> AdminWebhook:
    """Endpoint ``n`` (id ``00000000000n``), healthy: last answer 204, 30 s ago at T0."""
    fields: dict[str, Any] = {
        "id": f"{n:012d}", "url": f"https://hooks.example.org/hearth/{n}", "events": [],
        "state": WebhookState.OK, "enabled": True, "created_at": T0 - 86400,
        "last_status": 204, "last_error": None, "last_success_at": T0 - 30,
        "consecutive_failures": 0, "pending": 0, "dropped": 0}
    fields.update(kw)
    return AdminWebhook(**fields)


def make_analytics(channel_id: str, broadcast_id: str, *, title: str = "Album night",
                   minutes: int = 48, **kw: Any) -> BroadcastAnalytics:
    """An ended broadcast's figures: a rise to a peak of 31 and a slow fall over ``minutes``."""
    start = T0 - 7200
    curve = [min(31, 2 + i * 2, max(0, 31 - (i - minutes // 2))) for i in range(minutes)]
    fields: dict[str, Any] = {
        "broadcast_id": broadcast_id, "channel_id": channel_id, "title": title,
        "status": "ended", "started_at": start, "ended_at": start + minutes * 60,
        "current_viewers": 0, "peak": max(curve), "peak_at": start + 15 * 60 + 12,
        "unique_viewers": 57, "sessions": 64, "watch_seconds": 41_230.0,
        "average_watch_seconds": 644.2, "vod_sessions": 5, "vod_viewers": 4,
        "vod_watch_seconds": 2_140.0, "chat_messages": 212, "chatters": 19,
        "split": [
            AnalyticsSplit(PlayerKind.LLHLS, DeviceClass.DESKTOP, 30, 27, 22_000.0),
            AnalyticsSplit(PlayerKind.LLHLS, DeviceClass.MOBILE, 18, 16, 9_800.0),
            AnalyticsSplit(PlayerKind.HLS, DeviceClass.TV, 4, 3, 5_100.0),
            AnalyticsSplit(PlayerKind.HLS, DeviceClass.BOT, 3, 2, 40.0),
            AnalyticsSplit(PlayerKind.WEBRTC, DeviceClass.DESKTOP, 12, 11, 4_330.0),
            AnalyticsSplit(PlayerKind.VOD, DeviceClass.TABLET, 5, 4, 2_140.0)],
        "timeline": [AnalyticsMinute(int(start) + 60 * i, v) for i, v in enumerate(curve)],
        "updated_at": start + minutes * 60}
    fields.update(kw)
    return BroadcastAnalytics(**fields)


def make_channel_analytics(channel_id: str, broadcasts: list[BroadcastAnalytics], *,
                           title: str = "Jazz night") -> ChannelAnalytics:
    """A channel roll-up of ``broadcasts`` (newest first), as the appliance would build it."""
    lines = [BroadcastAnalyticsLine(b.broadcast_id, b.title, b.started_at, b.ended_at, b.peak,
                                    b.unique_viewers, b.watch_seconds, b.chat_messages)
             for b in broadcasts]
    watch = sum(b.watch_seconds for b in broadcasts)
    sessions = sum(b.sessions for b in broadcasts)
    return ChannelAnalytics(
        channel_id=channel_id, title=title, days=30, broadcasts=len(lines),
        peak=max((b.peak for b in broadcasts), default=0),
        peak_at=broadcasts[0].peak_at if broadcasts else None,
        unique_viewers=sum(b.unique_viewers for b in broadcasts), sessions=sessions,
        watch_seconds=watch, average_watch_seconds=round(watch / sessions, 1) if sessions else 0,
        vod_sessions=sum(b.vod_sessions for b in broadcasts),
        vod_watch_seconds=sum(b.vod_watch_seconds for b in broadcasts),
        chat_messages=sum(b.chat_messages for b in broadcasts),
        chatters=sum(b.chatters for b in broadcasts),
        split=[s for b in broadcasts for s in b.split], per_day=[], per_broadcast=lines)


def make_recording(n: int, **kw: Any) -> AdminRecording:
    """A finished recording of broadcast ``b<n>``, 10 min long, with a fresh thumbnail."""
    bid = f"b{n:011d}"
    fields: dict[str, Any] = {
        "broadcast_id": bid, "title": f"Broadcast {n}", "state": "complete",
        "started_at": T0 - 3600 * n, "ended_at": T0 - 3600 * n + 600, "duration": 600.0,
        "bytes": 150_000_000, "segments": 300, "kept": False, "error": "",
        "recording_url": f"http://h/vod/{bid}/index.m3u8",
        "download_url": f"http://h/vod/{bid}/download.mp4",
        "thumbnail_url": f"http://h/thumb/{bid}.jpg", "thumbnail_age": 8.0}
    fields.update(kw)
    return AdminRecording(**fields)


def make_chat(stream_id: str, n: int, content: str | None = None, **kw: Any) -> ChatMessage:
    pubkey = kw.pop("pubkey", f"{n % 7:x}" * 64)
    return ChatMessage(id=f"{n:064x}", stream_id=stream_id, pubkey=pubkey,
                       created_at=int(T0) - 100 + n, content=content or f"message {n}",
                       display_name=kw.pop("display_name", f"viewer{n % 7}"), **kw)


class FakeAdminClient:
    """Scriptable fake of the admin API (see module docstring)."""

    def __init__(self, streams: list[AdminStream] | None = None, *,
                 events: list[LogEvent] | None = None,
                 chat: dict[str, list[ChatMessage]] | None = None,
                 relays: list[RelayInfo] | None = None,
                 chat_available: bool = True, connected: bool = True) -> None:
        self.streams = {s.id: s for s in streams or []}
        self.log = list(events or [])
        self.chat = {k: list(v) for k, v in (chat or {}).items()}
        self.relays = relays
        self.chat_available = chat_available
        self.connected = connected
        self.calls: list[tuple[Any, ...]] = []
        self.blocks: list[AddressBlock] = []
        self.errors: dict[str, ApplianceError] = {}
        """Method name → error to raise once (e.g. a 400 validation error)."""
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._next = len(self.streams) + 1
        self.subscribed = asyncio.Event()
        self.recordings: dict[str, AdminRecording] = {}
        self.webhooks: dict[str, AdminWebhook] = {}
        self.goals: dict[str, StreamGoal] = {}
        self.analytics: dict[str, BroadcastAnalytics] = {}
        """Broadcast id → its figures; a channel's roll-up is built from those of its id."""
        self.channel_titles: dict[str, str] = {}
        """Channel id → its goal (as the appliance would report for its latest broadcast)."""
        self.signer: dict[str, Any] = {"state": "none", "last_error": None, "waiting": {},
                                       "remote_signer_pubkey": None, "remote_relays": [],
                                       "user_pubkey": None, "nostrconnect_uri": None}

    # ---- test controls ------------------------------------------------------------------

    def emit(self, event: AdminEvent) -> None:
        """Deliver one live event to the dashboard's event stream.

        It travels as the appliance sends it (:func:`encode_event`) and is decoded as the real
        client decodes it, so the fake exercises the wire contract too.
        """
        self._queue.put_nowait(encode_event(event))

    def emit_raw(self, frame: bytes) -> None:
        """Deliver raw SSE bytes (unknown kinds, malformed data, split frames)."""
        self._queue.put_nowait(frame)

    def disconnect(self) -> None:
        """Cut the socket: the event stream fails and every call raises until reconnect."""
        self.connected = False
        self._queue.put_nowait(None)

    def reconnect(self) -> None:
        self.connected = True

    # ---- AdminClient --------------------------------------------------------------------

    def _check(self, name: str) -> None:
        if not self.connected:
            raise ApplianceUnreachable("No admin API at /tmp/fake.sock.", "Connection lost")
        if name in self.errors:
            raise self.errors.pop(name)

    async def get_status(self) -> Status:
        self._check("get_status")
        live = [s for s in self.streams.values() if s.status == "live"]
        return Status(version="test", started_at=T0 - 3600, uptime=3600.0,
                      public_url="http://box:8080", rtmp_url="rtmp://box:1935/live",
                      data_dir="/var/lib/hearth", streams_total=len(self.streams),
                      streams_live=len(live), publishers=len(live),
                      viewers=sum(s.viewers for s in live), rtmp_connections=len(live),
                      auth_failures=0, frames_discarded=0)

    async def list_streams(self) -> list[AdminStream]:
        self._check("list_streams")
        return list(self.streams.values())

    async def list_events(self, limit: int = 100) -> list[LogEvent]:
        self._check("list_events")
        return self.log[-limit:]

    async def list_chat(self, stream_id: str, limit: int = 200) -> list[ChatMessage] | None:
        self._check("list_chat")
        if not self.chat_available:
            return None
        return self.chat.get(stream_id, [])[-limit:]

    async def list_blocks(self) -> list[AddressBlock]:
        self._check("list_blocks")
        return list(self.blocks)

    async def lift_block(self, address: str) -> None:
        self.calls.append(("lift_block", address))
        self._check("lift_block")
        self.blocks = [b for b in self.blocks if b.address != address]

    async def list_relays(self) -> list[RelayInfo] | None:
        self._check("list_relays")
        return self.relays

    async def create_stream(self, draft: StreamDraft) -> StreamCredentials:
        self.calls.append(("create_stream", draft))
        self._check("create_stream")
        n = self._next
        self._next += 1
        stream = replace(make_stream(n, status="created"), title=draft.title,
                         summary=draft.summary, tags=list(draft.tags), image=draft.image,
                         record=draft.record, retention_days=draft.retention_days,
                         ladder=list(draft.ladder),
                         visibility=draft.visibility or "public")
        self.streams[stream.id] = stream
        return StreamCredentials(id=stream.id, title=stream.title,
                                 rtmp_url="rtmp://box:1935/live",
                                 stream_key=f"hk_{stream.id}_{'k' * 32}",
                                 watch_url=stream.watch_url, hls_url=stream.hls_url)

    async def update_stream(self, stream_id: str, draft: StreamDraft) -> AdminStream:
        self.calls.append(("update_stream", stream_id, draft))
        self._check("update_stream")
        stream = replace(self.streams[stream_id], title=draft.title, summary=draft.summary,
                         tags=list(draft.tags), image=draft.image,
                         record=draft.record, retention_days=draft.retention_days,
                         ladder=list(draft.ladder),
                         visibility=draft.visibility or self.streams[stream_id].visibility)
        self.streams[stream_id] = stream
        return stream

    async def end_stream(self, stream_id: str) -> AdminStream:
        self.calls.append(("end_stream", stream_id))
        self._check("end_stream")
        stream = replace(self.streams[stream_id], status="ended", ended_at=T0, ingest=None,
                         viewers=0, publishing=False)
        self.streams[stream_id] = stream
        return stream

    async def create_grant(self, ident: str, expires_in: float) -> GrantCreated:
        self.calls.append(("create_grant", ident, expires_in))
        self._check("create_grant")
        token = f"v1.watch.{ident}._.{int(T0 + expires_in)}.0.{'M' * 43}"
        return GrantCreated(channel_id=ident, broadcast_id=None, token=token,
                            watch_url=f"http://box:8080/c/{ident}#grant={token}",
                            hls_url=f"http://box:8080/hls/{ident}/index.m3u8",
                            expires_at=T0 + expires_in)

    async def plan_broadcast(self, channel_id: str, title: str, starts: float) -> None:
        self.calls.append(("plan_broadcast", channel_id, title, starts))
        self._check("plan_broadcast")
        s = self.streams[channel_id]
        if s.next_planned_at is None or starts < s.next_planned_at:
            self.streams[channel_id] = replace(s, next_planned_title=title,
                                               next_planned_at=starts)

    async def rotate_key(self, stream_id: str) -> StreamCredentials:
        self.calls.append(("rotate_key", stream_id))
        self._check("rotate_key")
        s = self.streams[stream_id]
        return StreamCredentials(id=s.id, title=s.title, rtmp_url="rtmp://box:1935/live",
                                 stream_key=f"hk_{s.id}_{'r' * 32}", watch_url=s.watch_url,
                                 hls_url=s.hls_url)

    async def get_goal(self, stream_id: str) -> StreamGoal | None:
        self._check("get_goal")
        return self.goals.get(stream_id)

    async def set_goal(self, stream_id: str, amount_sats: int, title: str) -> StreamGoal:
        self.calls.append(("set_goal", stream_id, amount_sats, title))
        self._check("set_goal")
        goal = StreamGoal(event_id=f"{len(self.calls):064x}", title=title,
                          amount_msats=amount_sats * 1000, progress_msats=0)
        self.goals[stream_id] = goal
        return goal

    async def send_chat(self, stream_id: str, content: str,
                        reply_to: str | None = None) -> None:
        self.calls.append(("send_chat", stream_id, content, reply_to))
        self._check("send_chat")

    async def hide_message(self, stream_id: str, event_id: str) -> None:
        self.calls.append(("hide_message", stream_id, event_id))
        self._check("hide_message")

    async def pin_message(self, stream_id: str, event_id: str) -> None:
        self.calls.append(("pin_message", stream_id, event_id))
        self._check("pin_message")

    async def mute_pubkey(self, pubkey: str) -> None:
        self.calls.append(("mute_pubkey", pubkey))
        self._check("mute_pubkey")

    async def events(self) -> AsyncIterator[AdminEvent]:
        self._check("events")
        self.subscribed.set()
        parser = SseParser()
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                self.subscribed.clear()
                raise ApplianceUnreachable("The admin socket closed.", "Connection lost")
            for event in typed_events(parser.feed(chunk)):
                yield event

    async def nostr_info(self) -> dict[str, Any]:
        self._check("nostr_info")
        return {"service_npub": "npub1service", "signing_as": "service",
                "activity_pubkey": "ab" * 32, "operator_pubkey": None,
                "signer": dict(self.signer)}

    async def pair_bunker(self, uri: str) -> dict[str, Any]:
        self._check("pair_bunker")
        self.calls.append(("pair_bunker", uri))
        self.signer.update(state="connected", user_pubkey="cd" * 32)
        return dict(self.signer)

    async def start_nostrconnect(self) -> str:
        self._check("start_nostrconnect")
        self.calls.append(("start_nostrconnect",))
        uri = "nostrconnect://" + "ef" * 32 + "?relay=wss%3A%2F%2Fr.example&secret=00ff"
        self.signer.update(state="pairing", nostrconnect_uri=uri)
        return uri

    async def unpair_signer(self) -> None:
        self._check("unpair_signer")
        self.calls.append(("unpair_signer",))
        self.signer.update(state="none", user_pubkey=None)

    async def list_recordings(self) -> list[AdminRecording]:
        self._check("list_recordings")
        return list(self.recordings.values())

    async def keep_recording(self, broadcast_id: str, keep: bool) -> AdminRecording:
        self._check("keep_recording")
        self.calls.append(("keep_recording", broadcast_id, keep))
        r = replace(self.recordings[broadcast_id], kept=keep)
        self.recordings[broadcast_id] = r
        return r

    async def delete_recording(self, broadcast_id: str) -> None:
        self._check("delete_recording")
        self.calls.append(("delete_recording", broadcast_id))
        del self.recordings[broadcast_id]

    async def list_webhooks(self) -> list[AdminWebhook]:
        self._check("list_webhooks")
        return list(self.webhooks.values())

    async def test_webhook(self, webhook_id: str) -> str:
        self._check("test_webhook")
        self.calls.append(("test_webhook", webhook_id))
        w = self.webhooks[webhook_id]
        self.webhooks[webhook_id] = replace(w, pending=w.pending + 1)
        return f"test-{webhook_id}"

    async def broadcast_analytics(self, broadcast_id: str) -> BroadcastAnalytics:
        self._check("broadcast_analytics")
        self.calls.append(("broadcast_analytics", broadcast_id))
        if broadcast_id not in self.analytics:
            raise ApplianceError("no such broadcast", "Request refused (404)", status=404)
        return self.analytics[broadcast_id]

    async def channel_analytics(self, channel_id: str, days: int = 30) -> ChannelAnalytics:
        self._check("channel_analytics")
        self.calls.append(("channel_analytics", channel_id, days))
        mine = sorted((b for b in self.analytics.values() if b.channel_id == channel_id),
                      key=lambda b: -(b.started_at or 0))
        stream = self.streams.get(channel_id)
        title = self.channel_titles.get(channel_id) or (stream.title if stream else channel_id)
        return make_channel_analytics(channel_id, mine, title=title)

    async def close(self) -> None:
        self.calls.append(("close",))


async def drawn(pilot: Pilot[Any]) -> None:
    """Wait until the dashboard has drawn everything queued. Its redraws are throttled to
    one per 0.1 s by a timer, which ``pilot.pause()`` does not wait for: on a busy machine
    a snapshot or an assertion ran before the last redraw."""
    await pilot.pause()
    for _ in range(200):
        if not any(getattr(s, "redraw_pending", False) for s in pilot.app.screen_stack):
            break
        await pilot.pause(0.02)
    await pilot.pause()
