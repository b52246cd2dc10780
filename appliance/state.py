"""The running appliance's shared objects, built by :mod:`appliance.lifecycle`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from appliance.bus import Bus
from appliance.channels import BroadcastMedia, ChannelService
from appliance.config import Config
from appliance.db import Store
from appliance.viewers import ViewerTokens

if TYPE_CHECKING:
    from appliance.access import AccessService
    from appliance.analytics.service import AnalyticsService
    from appliance.api.conncap import AddressCap
    from appliance.delivery.service import Delivery
    from appliance.ingest import IngestHandler
    from appliance.nostr.service import NostrService
    from appliance.restream import RestreamService
    from appliance.srt.ingest import SrtIngest
    from appliance.srt.server import SrtServer
    from appliance.webhooks.service import WebhookService
    from appliance.webrtc import WebRtcManager
    from appliance.whip import WhipManager


@dataclass
class AppState:
    config: Config
    store: Store
    service: ChannelService
    ingest: IngestHandler
    bus: Bus = field(default_factory=Bus)
    tokens: ViewerTokens = field(default_factory=ViewerTokens)
    static_files: dict[str, bytes] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    metrics_hls_bytes: int = 0
    webrtc: WebRtcManager | None = None
    """WHEP peers; None unless ``webrtc.enabled``."""
    whip: WhipManager | None = None
    """WHIP publishing sessions; None unless ``webrtc.enabled`` and ``webrtc.whip``."""
    nostr: NostrService | None = None
    delivery: Delivery | None = None
    """Recordings, thumbnails and downloads (None only in tests that build a bare state)."""
    http_cap: AddressCap | None = None
    """Open public HTTP connections per address (set when the site starts)."""
    media: BroadcastMedia | None = None
    """Recording/thumbnail URLs per broadcast; None until a recorder provides them."""
    access: AccessService | None = None
    """Grants and channel passwords (None only in tests that build a bare state: then
    private broadcasts refuse everyone)."""
    webhooks: WebhookService | None = None
    """Webhook endpoints and their outbox (None only in tests that build a bare state)."""
    restream: RestreamService | None = None
    """Simulcast targets and their runners (None only in tests that build a bare state)."""
    analytics: AnalyticsService | None = None
    """Audience analytics (None when ``analytics.enabled`` is off, or in bare test states)."""
    srt: SrtServer | None = None
    """The SRT listener; None unless ``srt.enabled``."""
    srt_ingest: SrtIngest | None = None
