"""Hearth's own identity on Nostr, published with the service key and kept current:

* kind 0 profile (NIP-01/NIP-24): ``name``, ``about``, ``picture``, ``website`` = public URL;
* kind 10002 relay list (NIP-65): where Hearth reads and writes;
* kind 31990 handler (NIP-89): "Hearth's watch page opens kind 30311", with a ``web`` URL
  template ``<public URL>/nostr/<bech32>`` for ``naddr`` (served by the public app).

Each is republished only when its content or tags differ from the last one committed to the
outbox (the public URL, the relays or the profile settings changed).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from appliance.config import Config
from appliance.db import Store
from appliance.db import nostr_queries as nq
from appliance.nostr.outbox import Outbox, add_to_outbox
from relay_client import NostrEvent, PrivateKeySigner, UnsignedEvent
from relay_client.live import LIVE_ACTIVITY_KIND

logger = logging.getLogger(__name__)

PROFILE_KIND = 0
RELAY_LIST_KIND = 10002
HANDLER_KIND = 31990
HANDLER_D = "hearth-watch"


@dataclass(frozen=True, slots=True)
class _Desired:
    kind: int
    content: str
    tags: tuple[tuple[str, ...], ...]
    supersede_key: str


def identity_events(config: Config, pubkey: str) -> list[_Desired]:
    """What Hearth says about itself, given the config (pure)."""
    base = config.public_base_url
    nostr = config.nostr
    profile: dict[str, str] = {
        "name": nostr.profile_name or "Hearth",
        "about": nostr.profile_about or f"Live streams at {base}",
        "website": base,
    }
    if nostr.profile_picture:
        profile["picture"] = nostr.profile_picture
    content = json.dumps(profile, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    out = [_Desired(PROFILE_KIND, content, (), f"{PROFILE_KIND}:{pubkey}")]
    if nostr.relays:
        out.append(_Desired(RELAY_LIST_KIND, "", tuple(("r", r) for r in nostr.relays),
                            f"{RELAY_LIST_KIND}:{pubkey}"))
    handler_tags: tuple[tuple[str, ...], ...] = (
        ("d", HANDLER_D), ("k", str(LIVE_ACTIVITY_KIND)),
        ("web", f"{base}/nostr/<bech32>", "naddr"),
        ("alt", f"Hearth opens live streams (kind {LIVE_ACTIVITY_KIND}) at {base}"))
    out.append(_Desired(HANDLER_KIND, content, handler_tags,
                        f"{HANDLER_KIND}:{pubkey}:{HANDLER_D}"))
    return out


class ServiceIdentity:
    """Publishes :func:`identity_events` when they change."""

    def __init__(self, store: Store, outbox: Outbox, service: PrivateKeySigner,
                 relays: tuple[str, ...]) -> None:
        self.store = store
        self.outbox = outbox
        self.service = service
        self.relays = relays

    async def publish_if_changed(self, config: Config) -> list[NostrEvent]:
        published: list[NostrEvent] = []
        for want in identity_events(config, self.service.public_key):
            event = await self._publish_one(want)
            if event is not None:
                published.append(event)
        if published:
            logger.info("nostr: published Hearth's identity (kinds %s)",
                        ", ".join(str(e.kind) for e in published))
            await self.outbox.wake()
        return published

    async def _publish_one(self, want: _Desired) -> NostrEvent | None:
        last = await self.store.read(lambda db: nq.latest_outbox_event(db, want.supersede_key))
        if last is not None:
            prev = NostrEvent.from_json(last)
            if (prev.content, prev.tags) == (want.content, want.tags):
                return None
        signer, relays = self.service, self.relays

        def tx(db: Any) -> NostrEvent:
            created_at = nq.claim_created_at(db, want.supersede_key, int(time.time()))
            event = signer.sign_event(UnsignedEvent(want.kind, want.content, want.tags,
                                                    created_at))
            add_to_outbox(db, event, relays, supersede_key=want.supersede_key)
            return event

        return await self.store.write(tx)
