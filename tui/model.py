"""What the dashboard knows about the appliance: a plain, synchronous, testable model.

The main screen applies incoming messages here and then pushes the parts that changed down
to its widgets as attributes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from appliance.api.schema import AdminStream, ChatMessage, LogEvent, RelayInfo

HISTORY = 60
"""Viewer samples kept per stream for the sparkline."""
CHAT_KEEP = 200
"""Chat messages kept per stream (older ones scroll away; the appliance keeps them all)."""
LOG_KEEP = 300


@dataclass
class DashboardModel:
    streams: dict[str, AdminStream] = field(default_factory=dict)
    viewer_history: dict[str, deque[int]] = field(default_factory=dict)
    chat: dict[str, dict[str, ChatMessage]] = field(default_factory=dict)
    chat_unavailable: bool = False
    events: deque[LogEvent] = field(default_factory=lambda: deque(maxlen=LOG_KEEP))
    relays: dict[str, RelayInfo] | None = None
    connected: bool = False

    def ordered_streams(self) -> list[AdminStream]:
        """Live first, then waiting to go live, then ended; newest first within each."""
        rank = {"live": 0, "created": 1}
        return sorted(self.streams.values(),
                      key=lambda s: (rank.get(s.status, 2), -s.created_at))

    def set_streams(self, streams: list[AdminStream]) -> None:
        self.streams = {s.id: s for s in streams}
        for s in streams:
            if s.status == "live":
                self._sample(s.id, s.viewers)

    def upsert_stream(self, stream: AdminStream) -> None:
        self.streams[stream.id] = stream

    def set_viewers(self, stream_id: str, current: int, peak: int) -> None:
        s = self.streams.get(stream_id)
        if s is not None:
            self.streams[stream_id] = replace(s, viewers=current,
                                              peak_viewers=max(peak, s.peak_viewers))
        self._sample(stream_id, current)

    def _sample(self, stream_id: str, viewers: int) -> None:
        self.viewer_history.setdefault(stream_id, deque(maxlen=HISTORY)).append(viewers)

    def set_chat(self, stream_id: str, messages: list[ChatMessage] | None) -> None:
        if messages is None:
            self.chat_unavailable = True
            return
        self.chat_unavailable = False
        ordered = sorted(messages, key=lambda m: m.created_at)[-CHAT_KEEP:]
        self.chat[stream_id] = {m.id: m for m in ordered}

    def apply_chat(self, stream_id: str, message: ChatMessage) -> None:
        """Add a new message or replace a moderated one (same event id)."""
        box = self.chat.setdefault(stream_id, {})
        box[message.id] = message
        if message.muted:  # a mute applies to everything that author wrote
            for mid, m in list(box.items()):
                if m.pubkey == message.pubkey and not m.muted:
                    box[mid] = replace(m, muted=True)
        if message.pinned:  # one pinned message per stream
            for mid, m in list(box.items()):
                if m.pinned and mid != message.id:
                    box[mid] = replace(m, pinned=False)
        while len(box) > CHAT_KEEP:
            del box[next(iter(box))]

    def set_muted(self, pubkey: str, muted: bool) -> None:
        """The host (un)muted an author: every stream's messages by them change at once."""
        for box in self.chat.values():
            for mid, m in list(box.items()):
                if m.pubkey == pubkey and m.muted != muted:
                    box[mid] = replace(m, muted=muted)

    def chat_for(self, stream_id: str | None) -> list[ChatMessage]:
        if stream_id is None:
            return []
        return list(self.chat.get(stream_id, {}).values())

    def set_relay(self, relay: RelayInfo) -> None:
        if self.relays is None:
            self.relays = {}
        self.relays[relay.url] = relay
