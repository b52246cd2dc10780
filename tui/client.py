"""The TUI's only door to the appliance: the admin API on its Unix socket.

:class:`AdminClient` is the contract the dashboard depends on (tests inject
:class:`tui.testing.FakeAdminClient`). The implementation is the one typed admin client the
CLI uses too, :class:`appliance.api.admin_client.UnixSocketAdminClient` (re-exported here with
its error types and the form draft).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from appliance.api.admin_client import (
    ApplianceError,
    ApplianceUnreachable,
    StreamDraft,
    UnixSocketAdminClient,
    typed_events,
)
from appliance.api.schema import (
    AddressBlock,
    AdminEvent,
    AdminRecording,
    AdminStream,
    AdminWebhook,
    BroadcastAnalytics,
    ChannelAnalytics,
    ChatMessage,
    GrantCreated,
    LogEvent,
    RelayInfo,
    Status,
    StreamCredentials,
    StreamGoal,
)

__all__ = ["AdminClient", "ApplianceError", "ApplianceUnreachable", "StreamDraft",
           "UnixSocketAdminClient", "typed_events"]


class AdminClient(Protocol):
    """What the dashboard needs from the appliance.

    Every method raises :class:`ApplianceUnreachable` when the socket is gone and
    :class:`ApplianceError` when the appliance answers with an error. The chat and relay
    reads return ``None`` when the appliance does not offer them (older versions).
    """

    async def get_status(self) -> Status: ...

    async def list_streams(self) -> list[AdminStream]: ...

    async def list_events(self, limit: int = 100) -> list[LogEvent]: ...

    async def list_chat(self, stream_id: str, limit: int = 200) -> list[ChatMessage] | None: ...

    async def list_relays(self) -> list[RelayInfo] | None: ...

    async def create_stream(self, draft: StreamDraft) -> StreamCredentials: ...

    async def update_stream(self, stream_id: str, draft: StreamDraft) -> AdminStream: ...

    async def end_stream(self, stream_id: str) -> AdminStream: ...

    async def rotate_key(self, stream_id: str) -> StreamCredentials: ...

    async def plan_broadcast(self, channel_id: str, title: str, starts: float) -> None: ...

    async def create_grant(self, ident: str, expires_in: float) -> GrantCreated:
        """A viewer link (signed, expiring grant) for a private channel or broadcast."""
        ...

    async def get_goal(self, stream_id: str) -> StreamGoal | None:
        """The zap goal of the channel's live or latest broadcast, ``None`` if there is none."""
        ...

    async def set_goal(self, stream_id: str, amount_sats: int, title: str) -> StreamGoal:
        """Publish a new NIP-75 zap goal for it (the appliance signs it as the operator)."""
        ...

    async def send_chat(self, stream_id: str, content: str,
                        reply_to: str | None = None) -> None: ...

    async def hide_message(self, stream_id: str, event_id: str) -> None: ...

    async def pin_message(self, stream_id: str, event_id: str) -> None: ...

    async def mute_pubkey(self, pubkey: str) -> None: ...

    async def list_blocks(self) -> list[AddressBlock]:
        """Addresses blocked for wrong stream keys (the correct key is still accepted)."""
        ...

    async def lift_block(self, address: str) -> None: ...

    def events(self) -> AsyncIterator[AdminEvent]:
        """Live changes until the connection drops (then raises ApplianceUnreachable).

        Only events this version understands: see :func:`typed_events`.
        """
        ...

    async def list_recordings(self) -> list[AdminRecording]: ...

    async def nostr_info(self) -> dict[str, Any]:
        """``GET /v1/nostr``: identities and the remote signer's state (``signer``)."""
        ...

    async def pair_bunker(self, uri: str) -> dict[str, Any]: ...

    async def start_nostrconnect(self) -> str:
        """A ``nostrconnect://`` URI to show; pairing completes when the signer answers."""
        ...

    async def unpair_signer(self) -> None: ...

    async def keep_recording(self, broadcast_id: str, keep: bool) -> AdminRecording: ...

    async def delete_recording(self, broadcast_id: str) -> None: ...

    async def list_webhooks(self) -> list[AdminWebhook]: ...

    async def test_webhook(self, webhook_id: str) -> str:
        """Queue a ``webhook.test`` delivery; returns its id."""
        ...

    async def broadcast_analytics(self, broadcast_id: str) -> BroadcastAnalytics:
        """One broadcast's audience (docs/analytics.md)."""

    async def channel_analytics(self, channel_id: str, days: int = 30) -> ChannelAnalytics:
        """A channel's broadcasts of the last ``days`` days, rolled up."""

    async def close(self) -> None: ...


