"""Domain objects → the API shapes of :mod:`appliance.api.schema` (admin and public alike).

One place builds every channel/broadcast answer, so the admin API, its event stream, the
public JSON and the pages agree on URLs and figures.
"""

from __future__ import annotations

from typing import Any

from appliance.api.schema import (
    AdminBroadcast,
    AdminChannel,
    AdminStream,
    ChannelCredentials,
    IngestInfo,
    LadderRenditionInfo,
    RestreamTarget,
)
from appliance.domain import Broadcast, BroadcastStatus, Channel
from appliance.live import LiveBroadcast
from appliance.state import AppState


def _base(state: AppState) -> str:
    return state.config.public_base_url


def channel_urls(state: AppState, channel_id: str) -> dict[str, str | None]:
    base = _base(state)
    return {
        "channel_url": f"{base}/c/{channel_id}",
        "hls_url": f"{base}/hls/{channel_id}/index.m3u8",
        "whep_url": f"{base}/whep/{channel_id}" if state.config.webrtc.enabled else None,
        "whip_url": (f"{base}/whip/{channel_id}"
                     if state.config.webrtc.enabled and state.config.webrtc.whip else None),
    }


def ingest_info(lb: LiveBroadcast) -> IngestInfo | None:
    snap = lb.snapshot()
    if not snap.publishing:
        return None
    h = snap.health
    assert snap.connection_id is not None and snap.remote is not None
    return IngestInfo(
        connection_id=snap.connection_id, remote=snap.remote,
        connected_at=snap.connected_at or 0.0, bitrate_kbps=h.bitrate_kbps, fps=h.fps,
        width=h.width, height=h.height, keyframe_interval=h.keyframe_interval,
        bframes=h.bframes, video_codec=h.video_codec, audio_codec=h.audio_codec,
        sample_rate=h.sample_rate, channels=h.channels, verdict=h.verdict(),
        bytes_in=h.bytes_in, frames_discarded=snap.frames_discarded,
        reconnects=snap.reconnects, verdict_reasons=h.reasons(),
        ladder=[LadderRenditionInfo(name=r.name, width=r.width, height=r.height, state=r.state,
                                    speed=r.speed, lag=r.lag, frames_dropped=r.frames_dropped,
                                    encoder=r.encoder) for r in snap.ladder],
        ladder_notice=snap.ladder_notice, protocol=snap.protocol,
    )


def admin_broadcast(state: AppState, b: Broadcast) -> AdminBroadcast:
    base = _base(state)
    lb = state.service.runtime(b.id)
    live = lb is not None and not lb.ended and b.status is BroadcastStatus.LIVE
    current, peak, total = lb.viewer_figures() if lb is not None and live else (0, 0, 0)
    media = state.media
    return AdminBroadcast(
        id=b.id, channel_id=b.channel_id, title=b.title, status=b.status.value,
        starts=b.starts, started_at=b.started_at, ended_at=b.ended_at,
        watch_url=f"{base}/watch/{b.id}", hls_url=f"{base}/hls/{b.id}/index.m3u8",
        recording_url=media.recording_url(b) if media else None,
        thumbnail_url=media.thumbnail_url(b) if media else None,
        viewers=current, peak_viewers=max(b.peak_viewers, peak),
        total_viewers=max(b.total_viewers, total), end_reason=b.end_reason,
        reconnects=max(b.reconnects, lb.reconnects if lb and live else 0),
        publishing=bool(live and lb and lb.link),
        grace_until=lb.grace_until if lb and live else None,
        ingest=ingest_info(lb) if lb and live else None,
        visibility=b.visibility.value,
        own_visibility=b.own_visibility.value if b.own_visibility else None,
    )


def restream_targets(state: AppState, channel_id: str) -> list[RestreamTarget]:
    """The channel's simulcast targets with their state (keys redacted)."""
    return state.restream.targets(channel_id) if state.restream is not None else []


def admin_channel(state: AppState, c: Channel, broadcasts: list[Broadcast]) -> AdminChannel:
    """``broadcasts``: the channel's broadcasts, newest first (any number; only live and
    planned ones are embedded)."""
    live = next((b for b in broadcasts if b.status is BroadcastStatus.LIVE), None)
    planned = sorted((b for b in broadcasts if b.status is BroadcastStatus.PLANNED),
                     key=lambda b: b.starts or 0.0)
    urls = channel_urls(state, c.id)
    return AdminChannel(
        id=c.id, title=c.title, summary=c.summary, tags=list(c.tags), image=c.image,
        record=c.record, retention_days=c.retention_days, created_at=c.created_at,
        rtmp_url=state.config.rtmp_url, channel_url=urls["channel_url"] or "",
        hls_url=urls["hls_url"] or "", whep_url=urls["whep_url"], whip_url=urls["whip_url"],
        live=admin_broadcast(state, live) if live else None,
        planned=[admin_broadcast(state, b) for b in planned[:10]],
        broadcasts_total=len(broadcasts),
        restream=restream_targets(state, c.id),
        visibility=c.visibility.value, has_password=c.has_password, ladder=list(c.ladder),
    )


def credentials(state: AppState, c: Channel, key: str) -> ChannelCredentials:
    urls = channel_urls(state, c.id)
    return ChannelCredentials(
        id=c.id, title=c.title, rtmp_url=state.config.rtmp_url, stream_key=key,
        channel_url=urls["channel_url"] or "", hls_url=urls["hls_url"] or "",
        watch_url=f"{_base(state)}/watch/{c.id}", whep_url=urls["whep_url"],
        srt_url=f"{state.config.srt_url}{key}" if state.config.srt_url else None,
        whip_url=urls["whip_url"],
    )


def admin_stream(state: AppState, c: Channel, latest: Broadcast | None,
                 planned: Broadcast | None = None) -> AdminStream:
    """The pre-channels view of a channel (``/v1/streams``, ``hearth stream …``, the TUI);
    ``planned`` is its next planned broadcast."""
    base = _base(state)
    b = admin_broadcast(state, latest) if latest else None
    if b is None or latest is None or latest.status is BroadcastStatus.PLANNED:
        status = "created"
    else:
        status = latest.status.value
    return AdminStream(
        id=c.id, title=c.title, summary=c.summary, tags=list(c.tags), image=c.image,
        status=status, created_at=c.created_at,
        started_at=b.started_at if b else None, ended_at=b.ended_at if b else None,
        viewers=b.viewers if b else 0, peak_viewers=b.peak_viewers if b else 0,
        total_viewers=b.total_viewers if b else 0,
        watch_url=f"{base}/watch/{c.id}", hls_url=f"{base}/hls/{c.id}/index.m3u8",
        publishing=b.publishing if b else False, grace_until=b.grace_until if b else None,
        ingest=b.ingest if b else None, broadcast_id=latest.id if latest else None,
        next_planned_title=planned.title if planned else None,
        next_planned_at=planned.starts if planned else None,
        record=c.record, retention_days=c.retention_days, visibility=c.visibility.value,
        restream=restream_targets(state, c.id), ladder=list(c.ladder),
    )


def public_broadcast(state: AppState, b: Broadcast) -> dict[str, Any]:
    """``/api/broadcasts/{id}`` (and its pre-channels alias ``/api/streams/{id}``)."""
    a = admin_broadcast(state, b)
    data: dict[str, Any] = {
        "id": b.id, "channel_id": b.channel_id, "title": b.title, "summary": b.summary,
        "tags": list(b.tags), "image": b.image, "status": b.status.value, "starts": b.starts,
        "started_at": b.started_at, "ended_at": b.ended_at, "viewers": a.viewers,
        "peak_viewers": a.peak_viewers, "watch_url": a.watch_url, "hls_url": a.hls_url,
        "recording_url": a.recording_url, "thumbnail_url": a.thumbnail_url,
    }
    if state.config.webrtc.enabled:
        data["whep_url"] = f"{_base(state)}/whep/{b.id}"
    return data


def public_channel(state: AppState, c: Channel, broadcasts: list[Broadcast]) -> dict[str, Any]:
    live = next((b for b in broadcasts if b.status is BroadcastStatus.LIVE), None)
    planned = sorted((b for b in broadcasts if b.status is BroadcastStatus.PLANNED),
                     key=lambda b: b.starts or 0.0)
    urls = channel_urls(state, c.id)
    data: dict[str, Any] = {
        "id": c.id, "title": c.title, "summary": c.summary, "tags": list(c.tags),
        "image": c.image, "channel_url": urls["channel_url"], "hls_url": urls["hls_url"],
        "live": public_broadcast(state, live) if live else None,
        "planned": [public_broadcast(state, b) for b in planned[:10]],
    }
    if urls["whep_url"]:
        data["whep_url"] = urls["whep_url"]
    return data
