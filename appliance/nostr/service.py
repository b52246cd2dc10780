"""The appliance's Nostr side, composed from small services (one concern each):

* :mod:`~appliance.nostr.identity` — the service key and the operator (who signs),
* :mod:`~appliance.nostr.live_events` — kind 30311 (what it says, and when) and deletions,
* :mod:`~appliance.nostr.outbox` — durable outbox, delivery with retries, per-relay state,
* :mod:`~appliance.nostr.intake` — chat from relays and browsers, and the chat read model,
* :mod:`~appliance.nostr.moderation` / :mod:`~appliance.nostr.mutes` — hide, pin, mute,
* :mod:`~appliance.nostr.profiles` — chatters' names from kind 0.

:class:`NostrService` builds them around one :class:`relay_client.RelayPool` and is the single
entry point for the lifecycle and the API. With zero relays everything still works locally:
events are kept as the latest state and chat flows between pages through the public
WebSocket.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from appliance.api.schema import ChatMessage, RelayInfo
from appliance.bus import Bus, ProfileChanged
from appliance.channels import BroadcastMedia, ChannelService
from appliance.config import Config
from appliance.db import Store
from appliance.nostr.chat import DuplicateGuard, RateLimiter
from appliance.nostr.errors import ChatRejected, NostrNotFound, SignerUnavailableError
from appliance.nostr.goals import Goals
from appliance.nostr.identity import Identity
from appliance.nostr.intake import ChatIntake
from appliance.nostr.live_events import LiveEvents
from appliance.nostr.moderation import Moderation
from appliance.nostr.mutes import MUTE_LIST_KIND, MuteList
from appliance.nostr.nip05 import Nip05Verifier
from appliance.nostr.outbox import Outbox
from appliance.nostr.profiles import Profiles
from appliance.nostr.reactions import Reactions
from appliance.nostr.remote import PairingError, RemoteSigner
from appliance.nostr.service_identity import ServiceIdentity
from appliance.periodic import sleep_to_grid
from appliance.tasks import BackgroundTasks
from relay_client import NostrEvent, PoolConfig, PrivateKeySigner, RelayPool, RelayStatus
from relay_client.live import LIVE_ACTIVITY_KIND
from relay_client.nip19 import encode_naddr

logger = logging.getLogger(__name__)

__all__ = ["ChatRejected", "NostrNotFound", "NostrService", "PairingError",
           "SignerUnavailableError"]


class _Parts:
    """The services built by :meth:`NostrService.start` (all exist together, or none)."""

    def __init__(self, identity: Identity, pool: RelayPool, outbox: Outbox, profiles: Profiles,
                 mutes: MuteList, intake: ChatIntake, live: LiveEvents,
                 moderation: Moderation, goals: Goals) -> None:
        self.identity = identity
        self.pool = pool
        self.outbox = outbox
        self.profiles = profiles
        self.mutes = mutes
        self.intake = intake
        self.live = live
        self.moderation = moderation
        self.goals = goals


class NostrService:
    """Facade over the Nostr services. ``await start()`` / ``await close()`` from the
    lifecycle; ``start_tasks()`` once the public URL is final."""

    def __init__(self, config: Config, store: Store, streams: ChannelService, bus: Bus,
                 *, pool_config: PoolConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` (monotonic seconds) drives the chat rate limits; tests inject one."""
        self._config = config
        self.store = store
        self.streams = streams
        self.bus = bus
        self.rejected: Counter[str] = Counter()
        # Per pubkey: 2 msgs / 3 s. Per IP the bucket is wider, because many viewers can
        # share one address (NAT), yet it stops one client cycling through fresh keys
        # (docs/threat-model.md §chat).
        self.ip_limiter = RateLimiter(capacity=10, period=3.0, clock=clock)
        self.pubkey_limiter = RateLimiter(clock=clock)
        self.duplicates = DuplicateGuard(clock=clock)
        self._pool_config = pool_config or PoolConfig(publish_timeout=10.0)
        self._tasks = BackgroundTasks("nostr")
        self._parts: _Parts | None = None

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """The lifecycle replaces the config once ports are resolved (public URLs change)."""
        self._config = config
        if self._parts is not None:
            self._parts.live.config = config

    @property
    def parts(self) -> _Parts:
        assert self._parts is not None, "NostrService not started"
        return self._parts

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        identity = await Identity.load(self._config)
        relays = tuple(self._config.nostr.relays)
        logger.info("nostr: service pubkey %s, signing as %s, %d relay(s)",
                    identity.service_pubkey, identity.signing_as, len(relays))
        pool = RelayPool(relays, signer=identity.service, config=self._pool_config,
                         on_status_change=self._on_relay_status)
        outbox = Outbox(self.store, self.bus, pool, relays, self._tasks)
        profiles = Profiles(self.store, pool, relays, self._tasks, on_name=self._name_learned,
                            nip05=Nip05Verifier() if self._config.nostr.nip05_verify else None)
        mutes = MuteList(self.store, identity.operator_pubkey)
        reactions = Reactions(self.store, self.bus, outbox, relays)
        intake = ChatIntake(
            store=self.store, streams=self.streams, bus=self.bus, identity=identity,
            outbox=outbox, profiles=profiles, mutes=mutes, pool=pool, relays=relays,
            tasks=self._tasks, rejected=self.rejected, ip_limiter=self.ip_limiter,
            pubkey_limiter=self.pubkey_limiter, duplicates=self.duplicates, reactions=reactions)
        live = LiveEvents(config=self._config, store=self.store, streams=self.streams,
                          bus=self.bus, identity=identity, outbox=outbox, relays=relays,
                          on_active=intake.subscribe, on_waiting_changed=self._signer_changed)
        moderation = Moderation(store=self.store, bus=self.bus, identity=identity, mutes=mutes,
                                intake=intake, live=live, outbox=outbox, relays=relays)
        await mutes.load()
        await outbox.load()
        goals = Goals(store=self.store, bus=self.bus, streams=self.streams, identity=identity,
                      outbox=outbox, intake=intake, live=live, relays=relays)
        await goals.load()
        self._parts = _Parts(identity, pool, outbox, profiles, mutes, intake, live, moderation,
                             goals)
        self._service_identity = ServiceIdentity(self.store, outbox, identity.service, relays)
        await pool.start()
        self._subscribe_mutes()

    def use_media(self, media: BroadcastMedia) -> None:
        """Where recordings are served: an ended broadcast's 30311 carries ``recording``."""
        self.parts.live.media = media

    def _subscribe_mutes(self) -> None:
        p = self.parts
        operator = p.identity.operator_pubkey
        p.mutes.operator_pubkey = operator
        if operator and self.relays:
            # NIP-51: the host's mute list is applied to chat (zap.stream does the same).
            p.pool.subscribe("mutes", [{"kinds": [MUTE_LIST_KIND], "authors": [operator],
                                        "limit": 1}], p.mutes.on_mute_list)

    def start_tasks(self) -> None:
        """Start following the bus and sending the outbox (once the public URL is final)."""
        p = self.parts
        self._spawn(p.live.follow_bus(), "nostr-bus")
        self._spawn(p.live.tick(), "nostr-tick")
        if self.relays:
            # Without relays the sender never has a delivery due and no profile can be
            # fetched: no once-a-second timers for them (an idle appliance wakes less).
            self._spawn(p.outbox.run(), "nostr-outbox")
            self._spawn(self._fetch_profiles(), "nostr-profiles")
        self._spawn(p.live.reconcile(), "nostr-reconcile")
        self._spawn(self._service_identity.publish_if_changed(self._config), "nostr-identity")

    async def close(self) -> None:
        await self._tasks.close()
        if self._parts is not None:
            await self._parts.pool.close()
            if self._parts.identity.remote is not None:
                await self._parts.identity.remote.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, name)

    async def _fetch_profiles(self) -> None:
        while True:
            await sleep_to_grid(1.0)  # with the other periodic jobs (appliance/periodic.py)
            self.parts.profiles.flush()
            self.parts.intake.flush_reaction_subscription()

    def _name_learned(self, pubkey: str, name: str) -> None:
        # Pages update the author of messages already shown (chat.js "profile").
        self.bus.publish(ProfileChanged(pubkey=pubkey, display_name=name))

    def _on_relay_status(self, st: RelayStatus) -> None:
        if self._parts is not None:
            self._parts.outbox.on_relay_status(st)

    # ---- the operator's remote signer (NIP-46) ---------------------------------------------

    def _remote(self) -> RemoteSigner:
        remote = self.parts.identity.remote
        assert remote is not None
        return remote

    def _check_operator(self, user_pubkey: str) -> None:
        configured = self.parts.identity.configured_operator
        if configured and configured != user_pubkey:
            raise PairingError("the remote signer signs for another pubkey than "
                               "nostr.operator_pubkey")

    async def pair_bunker(self, uri: str) -> dict[str, object]:
        """Pair with a ``bunker://`` URI; on success live events are republished as the
        operator. Raises :class:`PairingError` with a message for the operator."""
        remote = self._remote()
        previous = remote.pairing
        pairing = await remote.pair_bunker(uri)
        try:
            self._check_operator(pairing.user_pubkey)
        except PairingError:
            await remote.unpair()
            if previous is not None:
                await remote.restore(previous)
            raise
        await self._identity_changed()
        return self.signer_info()

    async def start_nostrconnect(self) -> str:
        """Begin a ``nostrconnect://`` pairing; returns the URI to show (text or QR)."""
        relays = self.relays or ()
        if not relays:
            raise PairingError("nostrconnect:// needs at least one relay in nostr.relays")
        uri = await self._remote().start_nostrconnect(
            relays, name="Hearth", url=self._config.public_base_url)
        self._spawn(self._finish_nostrconnect(), "nostr-nostrconnect")
        self._signer_changed()
        return uri.to_uri()

    async def _finish_nostrconnect(self) -> None:
        pairing = await self._remote().wait_nostrconnect()
        if pairing is not None:
            try:
                self._check_operator(pairing.user_pubkey)
            except PairingError as exc:
                await self._remote().unpair()
                self._remote().pending_error = str(exc)
                self._signer_changed()
                return
            await self._identity_changed()
        self._signer_changed()

    async def unpair(self) -> dict[str, object]:
        await self._remote().unpair()
        await self._identity_changed()
        return self.signer_info()

    async def _identity_changed(self) -> None:
        """The activity pubkey may have changed: follow the new coordinates and republish."""
        p = self.parts
        p.intake.resubscribe()
        self._subscribe_mutes()
        self._signer_changed()
        await p.live.reconcile()

    def signer_info(self) -> dict[str, object]:
        """The operator's signer as the admin API shows it (never a secret)."""
        p = self.parts
        remote = p.identity.remote
        pairing = remote.pairing if remote else None
        signer = remote.signer if remote else None
        if pairing is not None:
            state = "unreachable" if p.identity.remote_error else "connected"
        elif remote is not None and remote.pending_uri is not None:
            state = "pairing"
        else:
            state = "none"
        return {
            "state": state,
            "remote_signer_pubkey": pairing.signer_pubkey if pairing else None,
            "remote_relays": list(pairing.relays) if pairing else [],
            "user_pubkey": pairing.user_pubkey if pairing else None,
            "last_error": p.identity.remote_error or (remote.pending_error if remote else None),
            "last_ok_at": signer.last_ok_at if signer else None,
            "nostrconnect_uri": remote.pending_uri.to_uri()
            if remote and remote.pending_uri else None,
            "fallback": p.identity.fallback,
            "waiting": p.live.waiting(),
        }

    def _signer_changed(self) -> None:
        if self._parts is not None:
            info = self.signer_info()
            logger.info("nostr: operator signer %s%s, %d event(s) waiting", info["state"],
                        f" ({info['last_error']})" if info["last_error"] else "",
                        len(self.parts.live.waiting()))

    # ---- identities ------------------------------------------------------------------------

    @property
    def signer(self) -> PrivateKeySigner:
        return self.parts.identity.signer

    @property
    def service_pubkey(self) -> str:
        return self.parts.identity.service_pubkey

    @property
    def activity_pubkey(self) -> str:
        return self.parts.identity.activity_pubkey

    @property
    def operator_pubkey(self) -> str | None:
        return self.parts.identity.operator_pubkey

    @property
    def signing_as(self) -> str:
        return self.parts.identity.signing_as

    def address(self, stream_id: str) -> str:
        return self.parts.identity.address(stream_id)

    @property
    def relays(self) -> tuple[str, ...]:
        return tuple(self._config.nostr.relays)

    def host_label(self) -> str:
        """The operator as shown on pages: kind-0 name when known, else a short npub."""
        operator = self.operator_pubkey
        return self.parts.profiles.label(operator) if operator else ""

    def naddr(self, stream_id: str) -> str:
        """NIP-19 ``naddr`` of the stream's live event (with up to 3 relay hints), for
        ``nostr:`` links (NIP-21) on the watch page and in the CLI."""
        return encode_naddr(stream_id, self.activity_pubkey, LIVE_ACTIVITY_KIND,
                            list(self.relays[:3]))

    def owns_activity(self, kind: int, pubkey: str) -> bool:
        return kind == LIVE_ACTIVITY_KIND and pubkey in self.parts.identity.activity_pubkeys()

    def page_config(self, stream_id: str) -> dict[str, object]:
        """What chat.js needs: the ``a`` coordinate to sign into, relays, host pubkey, and
        the ``naddr`` for a ``nostr:`` link."""
        return {"address": self.address(stream_id), "relays": self.relays_for(stream_id),
                "host": self.operator_pubkey or self.activity_pubkey,
                "naddr": self.naddr(stream_id)}

    def relays_for(self, stream_id: str) -> list[str]:
        """Relays a page may name for this broadcast's chat: none unless it is public."""
        return list(self.relays) if self.streams.is_public(stream_id) else []

    # ---- live events and outbox ------------------------------------------------------------

    async def publish_activity(self, stream_id: str) -> NostrEvent | None:
        return await self.parts.live.publish_activity(stream_id)

    async def publish_deletion(self, stream_id: str) -> NostrEvent | None:
        return await self.parts.live.publish_deletion(stream_id)

    async def enqueue(self, event: NostrEvent, *, stream_id: str | None = None,
                      supersede_key: str | None = None) -> None:
        await self.parts.outbox.enqueue(event, stream_id=stream_id, supersede_key=supersede_key)

    def relay_infos(self) -> list[RelayInfo]:
        """Per-relay state for ``GET /v1/relays`` (and the TUI)."""
        return self._parts.outbox.relay_infos() if self._parts is not None else []

    def counters(self) -> dict[str, Any]:
        pool = self._parts.pool if self._parts is not None else None
        return {"rejected": dict(self.rejected),
                "relay_rejected": dict(pool.rejected_events) if pool else {},
                "duplicates": pool.duplicate_events if pool else 0}

    # ---- chat ------------------------------------------------------------------------------

    async def accept_browser_event(self, stream_id: str, obj: object,
                                   ip: str) -> ChatMessage | None:
        """A browser-signed 1311 (→ the stored message) or kind 7 reaction (→ ``None``)."""
        return await self.parts.intake.accept_browser_event(stream_id, obj, ip)

    # ---- zap goal (NIP-75) -----------------------------------------------------------------

    async def set_goal(self, stream_id: str, amount_sats: int, title: str) -> dict[str, Any]:
        return await self.parts.goals.set_goal(stream_id, amount_sats, title)

    async def goal(self, stream_id: str) -> dict[str, Any] | None:
        return await self.parts.goals.get(stream_id)

    async def reaction_counts(self, stream_id: str) -> dict[str, dict[str, int]]:
        return await self.parts.intake.reactions.counts(stream_id)

    async def list_chat(self, stream_id: str, limit: int = 200,
                        public: bool = False) -> list[ChatMessage]:
        return await self.parts.intake.list_chat(stream_id, limit, public)

    async def send_operator_chat(self, stream_id: str, content: str,
                                 reply_to: str | None = None) -> ChatMessage:
        return await self.parts.intake.send_operator_chat(stream_id, content, reply_to)

    # ---- moderation ------------------------------------------------------------------------

    async def set_hidden(self, stream_id: str, event_id: str, hidden: bool) -> ChatMessage:
        return await self.parts.moderation.set_hidden(stream_id, event_id, hidden)

    async def pin(self, stream_id: str, event_id: str) -> ChatMessage:
        return await self.parts.moderation.pin(stream_id, event_id)

    async def mute(self, pubkey_text: str) -> str:
        return await self.parts.moderation.mute(pubkey_text)

    async def unmute(self, pubkey_text: str) -> str:
        return await self.parts.moderation.unmute(pubkey_text)

    def mutes(self) -> list[str]:
        return self.parts.moderation.list_mutes()
