"""The runtime side of one broadcast that has (or recently had) media.

A :class:`LiveBroadcast` owns its hub :class:`~appliance.hub.Publisher`, the depacketizer of
its current publisher connection, its health meter, viewer counter and HLS feed, and exposes
them through methods and snapshots: ingest pushes tag bodies in (:meth:`video_tag`,
:meth:`audio_tag`), consumers attach hub readers (:meth:`open_reader`), pages and the admin API
read :meth:`snapshot`. Connection, grace and end decisions are the
:class:`~appliance.channels.ChannelService`'s; it drives the ``_``-prefixed transitions here.

HLS is one hub consumer among others (WebRTC sources, the recorder): :class:`HlsFeed` drains
the hub into the muxer the ``/hls`` routes serve, inline (a hub sink).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from appliance.config import HlsConfig
from appliance.hub import DEFAULT_READER_CAPACITY, Publisher, Reader
from appliance.ladder import Ladder, LadderSetup, RenditionSnapshot
from appliance.viewers import ViewerCounter
from media.depacketizer import FlvDepacketizer
from media.health import HealthMeter, HealthSnapshot
from media.hls.segmenter import HlsMuxer
from media.ladder import SegmentCuts
from media.timeline import SessionRebaser
from media.units import CodecConfig, MediaUnit, TrackKind

logger = logging.getLogger(__name__)


class PublisherLink(Protocol):
    """What a broadcast needs from an ingest connection, whatever its protocol.

    Implemented by RTMP (:mod:`appliance.ingest`) and WHIP (:mod:`appliance.whip`). The ingest
    seam for any protocol: key through ``IngestHandler.check_key``, then
    ``ChannelService.attach(channel_id, link)`` → :class:`LiveBroadcast`, media through
    :meth:`LiveBroadcast.video_tag`/:meth:`~LiveBroadcast.audio_tag` (FLV bodies) or
    :meth:`LiveBroadcast.publish_units` (units on the publisher's own 90 kHz clock), then
    ``ChannelService.detach(channel_id, link, reason)``. ``end`` is how the service drops the
    publisher (takeover, key rotation, operator end); ``code`` is an RTMP onStatus code that
    other protocols may ignore. A link may also have ``protocol`` (``"rtmp"``, ``"whip"``,
    ``"srt"``), shown to the operator.
    """

    id: int
    remote: str
    connected_at: float

    def end(self, code: str, description: str) -> None: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """A broadcast's runtime figures at one instant (for the admin API, pages, Nostr)."""

    broadcast_id: str
    channel_id: str
    publishing: bool
    ended: bool
    connection_id: int | None
    remote: str | None
    connected_at: float | None
    grace_until: float | None
    reconnects: int
    health: HealthSnapshot
    frames_discarded: int
    viewers: int
    peak_viewers: int
    total_viewers: int
    malformed_frames: int
    last_error: str
    ladder: tuple[RenditionSnapshot, ...] = ()
    """The quality ladder's renditions (empty when the channel's ladder is off)."""
    ladder_notice: str = ""
    protocol: str = ""
    """The publisher's ingest protocol (``rtmp``, ``whip``, ``srt``); empty when unknown."""


class HlsFeed:
    """A hub :class:`~appliance.hub.Sink` that packages a broadcast as LL-HLS; the playlist
    ends when the hub closes.

    Synchronous: each unit goes into the muxer inline from ``Publisher.publish`` (a muxer push
    is microseconds; a task per feed woke the loop for every unit, docs/architecture.md
    "Ingest hot path"). Items published before :meth:`start` reach the muxer too (the feed is
    attached at construction, as the hub reader it replaces was).
    """

    def __init__(self, name: str, publisher: Publisher, muxer: HlsMuxer) -> None:
        self.name = name
        self.muxer = muxer
        self._publisher = publisher
        self.errors = 0
        self.last_error = ""
        publisher.add_sink(self)

    def start(self) -> None:
        """Kept for the broadcast's life cycle; the feed runs from construction on."""

    def cancel(self) -> None:
        """Stop feeding without ending the playlist (shutdown)."""
        self._publisher.remove_sink(self)

    def unit(self, unit: MediaUnit) -> None:
        try:
            self.muxer.push(unit)
        except Exception as exc:  # a muxer bug must not kill the broadcast's feed
            self._failed(exc)

    def config(self, config: CodecConfig) -> None:
        if config.video is None and config.audio is None:
            return
        try:
            self.muxer.set_config(config.video, config.audio)
        except Exception as exc:
            self._failed(exc)

    def discontinuity(self) -> None:
        try:
            self.muxer.mark_discontinuity()
        except Exception as exc:
            self._failed(exc)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.muxer.end()

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.errors <= 3 or self.errors % 1000 == 0:
            logger.error("[%s] HLS muxer rejected an item (%d so far)", self.name, self.errors,
                         exc_info=exc)
        self.last_error = f"HLS packaging error: {exc}"


class LiveBroadcast:
    """Runtime state of one broadcast; see the module docstring. Runs on the event loop."""

    def __init__(self, broadcast_id: str, channel_id: str, hls: HlsConfig, *,
                 first_msn: int = 0, ladder: LadderSetup | None = None) -> None:
        self.broadcast_id = broadcast_id
        self.channel_id = channel_id
        self._publisher = Publisher(broadcast_id)
        self._depacketizer = FlvDepacketizer()
        self._health = HealthMeter()
        self._viewers = ViewerCounter()
        self._hls = HlsFeed(broadcast_id, self._publisher,
                            HlsMuxer(segment_target=hls.segment_target,
                                     part_target=hls.part_target, window=hls.window,
                                     first_msn=first_msn))
        self._ladder: Ladder | None = None
        if ladder is not None and ladder.presets:

            def make_muxer() -> HlsMuxer:  # same targets and numbers: segments line up
                return HlsMuxer(segment_target=hls.segment_target, part_target=hls.part_target,
                                window=hls.window, first_msn=first_msn, keyframe_cuts=True)

            self._ladder = Ladder(
                broadcast_id, ladder.presets, make_feed=HlsFeed,
                make_muxer=make_muxer, encoder=ladder.encoder, max_lag=ladder.max_lag,
                cuts=SegmentCuts(hls.segment_target, hls.part_target), on_event=ladder.on_event)
        self._link: PublisherLink | None = None
        self._grace: Cancellable | None = None
        self.grace_until: float | None = None
        self.ended_at: float | None = None
        self.reconnects = 0
        self.ingest_session_id: int | None = None
        self._malformed = 0
        self._last_error = ""
        self._rebaser = SessionRebaser()
        self._unit_dts: dict[TrackKind, int] = {}
        # A WHIP publisher's own Opus, beside the AAC made from it for HLS: WebRTC viewers
        # get it as sent (no second transcode).
        self._opus = Publisher(f"opus:{broadcast_id}")
        self._opus_dts = -1
        self._native_opus = False
        self._high_water = -1  # highest dts published, whichever ingest fed it

    def start(self) -> None:
        self._hls.start()
        if self._ladder is not None:
            self._ladder.start(self._publisher)

    # ---- read side -----------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def link(self) -> PublisherLink | None:
        """The connected publisher, or None (in the reconnect grace, or ended)."""
        return self._link

    @property
    def publisher(self) -> Publisher:
        """The hub fan-out point: attach a consumer with :meth:`open_reader`."""
        return self._publisher

    @property
    def muxer(self) -> HlsMuxer:
        """The HLS packaging of this broadcast (what ``/hls/…`` serves)."""
        return self._hls.muxer

    def hls_renditions(self) -> list[tuple[str | None, HlsMuxer]]:
        """Every served HLS rendition, tallest first: ``(None, source muxer)``, then the
        ladder's ``(preset name, muxer)`` that have a picture and were not shed."""
        out: list[tuple[str | None, HlsMuxer]] = [(None, self._hls.muxer)]
        if self._ladder is not None:
            out += [(r.name, r.muxer) for r in self._ladder.renditions()]
        return out

    def rendition_muxer(self, name: str) -> HlsMuxer | None:
        """A served ladder rendition's muxer by preset name, else None."""
        r = self._ladder.rendition(name) if self._ladder is not None else None
        return r.muxer if r is not None else None

    @property
    def ladder_on(self) -> bool:
        """The channel asked for a ladder for this broadcast."""
        return self._ladder is not None

    def webrtc_publisher(self) -> Publisher | None:
        """What WebRTC can carry: the source without B-frames, else the tallest ladder
        rendition (encoded without B-frames), else None."""
        if not self.has_bframes():
            return self._publisher
        r = self._ladder.webrtc_rendition() if self._ladder is not None else None
        return r.publisher if r is not None else None

    def open_reader(self, name: str, capacity: int = DEFAULT_READER_CAPACITY) -> Reader:
        """A new hub consumer, primed with the codec config, starting at a keyframe."""
        return self._publisher.add_reader(name, capacity)

    def codec_config(self) -> CodecConfig:
        return self._publisher.config

    def has_bframes(self) -> bool:
        return self._health.bframes

    def touch_viewer(self, session: str, address: str | None = None) -> bool:
        """A player session showed signs of life (a media request, a WebRTC consent check);
        ``address`` (a keyed client address) caps the sessions one address may hold. False
        if it was not counted (ended, or over the address cap)."""
        if self.ended:
            return False
        return self._viewers.seen(session, address)

    def viewers(self) -> int:
        return 0 if self.ended else self._viewers.current()

    def viewer_figures(self) -> tuple[int, int, int]:
        """(current, peak, total) viewer sessions."""
        return self.viewers(), self._viewers.peak, self._viewers.total

    def health(self) -> HealthSnapshot:
        return self._health.snapshot()

    def snapshot(self) -> LiveSnapshot:
        link = self._link
        current, peak, total = self.viewer_figures()
        return LiveSnapshot(
            broadcast_id=self.broadcast_id, channel_id=self.channel_id,
            publishing=link is not None, ended=self.ended,
            connection_id=link.id if link else None, remote=link.remote if link else None,
            connected_at=link.connected_at if link else None, grace_until=self.grace_until,
            reconnects=self.reconnects, health=self._health.snapshot(),
            frames_discarded=self._publisher.frames_discarded, viewers=current,
            peak_viewers=peak, total_viewers=total, malformed_frames=self._malformed,
            last_error=self._last_error or self._hls.last_error,
            ladder=tuple(self._ladder.snapshot()) if self._ladder is not None else (),
            ladder_notice=self._ladder.notice if self._ladder is not None else "",
            protocol=str(getattr(link, "protocol", "")) if link else "",
        )

    def health_record(self) -> dict[str, object]:
        """The health snapshot as stored on the broadcast row (JSON object)."""
        record: dict[str, object] = dataclasses.asdict(self._health.snapshot())
        record["verdict"] = self._health.snapshot().verdict()
        return record

    # ---- ingest side ---------------------------------------------------------------------------

    def accepts(self, link: PublisherLink) -> bool:
        """Whether media from ``link`` belongs here (a replaced connection's does not)."""
        return self._link is link and not self.ended

    def video_tag(self, timestamp: int, body: bytes) -> None:
        """Depacketize and publish; raises the depacketizer's media errors."""
        self._publish(self._depacketizer.video_tag(timestamp, body))

    def audio_tag(self, timestamp: int, body: bytes) -> None:
        self._publish(self._depacketizer.audio_tag(timestamp, body))

    def publish_units(self, outputs: Iterable[MediaUnit | CodecConfig]) -> None:
        """Publish units an ingest built itself (WHIP, SRT): the ingest-agnostic media seam.

        Unit timestamps are 90 kHz ticks on the publisher session's own clock (any origin,
        already unwrapped); they are moved onto the broadcast's monotonic timeline here,
        continuing after whatever any earlier publisher sent (reconnects, takeovers, a switch
        of protocol). A :class:`CodecConfig` equal to the one in force is dropped.
        """
        mapped: list[MediaUnit | CodecConfig] = []
        for out in outputs:
            if isinstance(out, MediaUnit):
                dts = self._rebaser.map(out.dts)
                last = self._unit_dts.get(out.kind)
                if last is not None and dts <= last:
                    dts = last + 1  # each track strictly increasing, as the FLV path keeps it
                self._unit_dts[out.kind] = dts
                mapped.append(dataclasses.replace(out, dts=dts,
                                                  pts=dts + max(0, out.pts - out.dts)))
            elif out != self._publisher.config:
                mapped.append(out)
        self._publish(mapped)

    def publish_native_opus(self, units: Iterable[MediaUnit]) -> None:
        """Opus packets exactly as the publisher sent them (units on the session clock, as
        for :meth:`publish_units`), for WebRTC viewers; the hub meanwhile carries the AAC
        transcoded from them. Marks the current publisher as an Opus one."""
        self._native_opus = True
        for unit in units:
            dts = max(self._rebaser.map(unit.dts), self._opus_dts + 1)
            self._opus_dts = dts
            self._opus.publish(dataclasses.replace(unit, dts=dts, pts=dts))

    @property
    def native_opus(self) -> bool:
        """The current publisher sends Opus (read it with :meth:`open_opus_reader`)."""
        return self._native_opus

    def open_opus_reader(self, name: str, capacity: int = DEFAULT_READER_CAPACITY) -> Reader:
        """A consumer of the publisher's own Opus (see :meth:`publish_native_opus`)."""
        return self._opus.add_reader(name, capacity)

    def _publish(self, outputs: list[MediaUnit | CodecConfig]) -> None:
        for out in outputs:
            if isinstance(out, MediaUnit):
                if out.dts > self._high_water:
                    self._high_water = out.dts
                self._health.add(out)
                self._publisher.publish(out)
            else:
                self._health.set_config(out.video, out.audio)
                self._publisher.set_config(out)

    def note_malformed(self) -> None:
        self._malformed += 1

    def note_error(self, message: str) -> None:
        """An operator-visible reason (unsupported codec, …) shown with the broadcast."""
        self._last_error = message

    # ---- transitions (ChannelService only) -----------------------------------------------------

    def _connect(self, link: PublisherLink) -> bool:
        """Make ``link`` the publisher; True if this continues earlier media (a reconnect)."""
        resumed = self._health.units > 0 or self.grace_until is not None
        self._cancel_grace()
        self._link = link
        self._depacketizer.new_session(self._high_water, self._publisher.config)
        self._rebaser.new_session(self._high_water)
        self._unit_dts.clear()
        self._native_opus = False
        if resumed:
            self.reconnects += 1
            self._publisher.discontinuity()
        return resumed

    def _disconnect(self) -> None:
        self._link = None

    def _set_grace(self, until: float, handle: Cancellable) -> None:
        self._cancel_grace()
        self.grace_until = until
        self._grace = handle

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self.grace_until = None

    def _end(self, at: float) -> None:
        self._cancel_grace()
        self._link = None
        self.ended_at = at
        self._publisher.close()  # the HLS feed ends the playlist
        self._opus.close()

    def _abort(self) -> None:
        """Shutdown: stop the feed without ending its playlist."""
        self._cancel_grace()
        self._hls.cancel()
        self._publisher.close()
        self._opus.close()
        if self._ladder is not None:
            self._ladder.abort()
