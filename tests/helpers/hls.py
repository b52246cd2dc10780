"""Read HLS the way a player does, and check it with an independent demuxer (PyAV)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from urllib.parse import urljoin

import av

from tests.helpers.appliance import http_get


@dataclass
class Playlist:
    text: str
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    target_duration: int = 0
    ended: bool = False
    map_uri: str | None = None
    segments: list[tuple[str, float, bool, str | None]] = field(default_factory=list)
    """(uri, duration, discontinuity before, EXT-X-MAP in force)"""

    @classmethod
    def parse(cls, text: str) -> Playlist:
        lines = text.splitlines()
        assert lines[0] == "#EXTM3U", lines[:1]
        pl = cls(text)
        duration: float | None = None
        disc = False
        for line in lines[1:]:
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                pl.media_sequence = int(line.split(":")[1])
            elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
                pl.discontinuity_sequence = int(line.split(":")[1])
            elif line.startswith("#EXT-X-TARGETDURATION:"):
                pl.target_duration = int(line.split(":")[1])
            elif line.startswith("#EXT-X-MAP:"):
                pl.map_uri = line.split('URI="')[1].split('"')[0]
            elif line.startswith("#EXTINF:"):
                duration = float(line[8:].split(",")[0])
            elif line == "#EXT-X-DISCONTINUITY":
                disc = True
            elif line == "#EXT-X-ENDLIST":
                pl.ended = True
            elif line and not line.startswith("#"):
                assert duration is not None, f"segment {line} without EXTINF"
                pl.segments.append((line, duration, disc, pl.map_uri))
                duration, disc = None, False
        return pl


def fetch_playlist(url: str) -> tuple[Playlist, str] | None:
    """Fetch a media playlist as a player does: through the multivariant one if given that."""
    r = http_get(url)
    if r.status != 200:
        return None
    if "#EXT-X-STREAM-INF:" in r.text:
        variant = next(x for x in r.text.splitlines() if x and not x.startswith("#"))
        r = http_get(urljoin(r.url, variant))
        if r.status != 200:
            return None
    return Playlist.parse(r.text), r.url


def download(base_url: str, uri: str) -> bytes:
    r = http_get(urljoin(base_url, uri))
    assert r.status == 200, f"{uri}: HTTP {r.status}"
    return r.body


@dataclass
class Demuxed:
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    sample_rate: int | None
    video_dts: list[float]
    audio_dts: list[float]
    decoded_video_frames: int

    @property
    def duration(self) -> float:
        ts = self.video_dts or self.audio_dts
        return ts[-1] - ts[0] if ts else 0.0


def demux(data: bytes, decode: bool = True) -> Demuxed:
    """Demux (and decode video of) an fMP4 byte string with PyAV."""
    with av.open(io.BytesIO(data), format="mp4") as c:
        vs = c.streams.video[0] if c.streams.video else None
        as_ = c.streams.audio[0] if c.streams.audio else None
        vd: list[float] = []
        ad: list[float] = []
        decoded = 0
        for pkt in c.demux():
            if pkt.dts is None or pkt.size == 0:
                continue
            t = float(pkt.dts * pkt.time_base)
            if vs is not None and pkt.stream.index == vs.index:
                vd.append(t)
                if decode:
                    decoded += len(pkt.decode())
            elif as_ is not None and pkt.stream.index == as_.index:
                ad.append(t)
        return Demuxed(
            video_codec=vs.codec_context.name if vs else None,
            audio_codec=as_.codec_context.name if as_ else None,
            width=vs.codec_context.width if vs else None,
            sample_rate=as_.codec_context.sample_rate if as_ else None,
            video_dts=vd, audio_dts=ad, decoded_video_frames=decoded,
        )
