"""The one typed client of the admin API (its Unix socket), shared by the CLI and the TUI.

It needs only aiohttp and :mod:`appliance.api.schema`, so the TUI may import it (the layering
allows exactly these two modules of the appliance; see ``pyproject.toml`` and
``tests/test_architecture.py``). Typed methods decode answers into the schema's DTOs;
:meth:`UnixSocketAdminClient.request` returns the raw JSON (the CLI's ``--json`` output).
Every failure is an :class:`ApplianceError` whose message is for the operator.
"""


from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from appliance.api.schema import (
    AddressBlock,
    AdminEvent,
    AdminRecording,
    AdminStream,
    AdminWebhook,
    BroadcastAnalytics,
    ChannelAnalytics,
    ChatMessage,
    Dto,
    GrantCreated,
    LogEvent,
    RelayInfo,
    RestreamTarget,
    SchemaError,
    SseFrame,
    SseParser,
    Status,
    StreamCredentials,
    StreamGoal,
    WebhookTestQueued,
    decode_event,
)

logger = logging.getLogger(__name__)


class ApplianceError(Exception):
    """The appliance refused a request; ``message`` is for the operator.

    Args:
        message: what went wrong, in words an operator understands.
        title: a short heading for the error modal.
        field: the offending form field for a 400 validation error, else ``None``.
        status: the HTTP status, when there was one.
    """

    def __init__(self, message: str, title: str = "Hearth error", *,
                 field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.title = title
        self.field = field
        self.status = status


class ApplianceUnreachable(ApplianceError):
    """The admin socket is missing, refused the connection or dropped it."""


@dataclass(frozen=True, slots=True)
class StreamDraft:
    """The editable fields of a stream, as the create/edit form collects them."""

    title: str
    summary: str = ""
    tags: tuple[str, ...] = ()
    image: str = ""
    record: bool = True
    """Record its broadcasts."""
    retention_days: int | None = None
    """Delete its recordings after this many days; None: the appliance's default."""
    ladder: tuple[str, ...] = ()
    """Quality-ladder presets (``720p``, ``480p``, …); empty: off."""
    visibility: str | None = None
    """public, unlisted or private; None leaves it as it is (public for a new channel)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "title": self.title, "summary": self.summary, "tags": list(self.tags),
            "image": self.image, "record": self.record,
            "retention_days": self.retention_days, "ladder": list(self.ladder)}
        if self.visibility is not None:
            data["visibility"] = self.visibility
        return data


def typed_events(frames: Iterable[SseFrame]) -> Iterator[AdminEvent]:
    """The events of ``frames`` this TUI understands.

    A kind it does not know (a newer appliance) is skipped silently; a frame that does not fit
    its schema is logged and skipped: one bad event must not cost the operator the dashboard.
    """
    for frame in frames:
        try:
            event = decode_event(frame)
        except SchemaError as exc:
            logger.warning("ignoring a malformed %.32r event from the appliance: %s",
                           frame.kind, exc)
            continue
        if event is None:
            logger.debug("ignoring unknown event kind %.32r", frame.kind)
            continue
        yield event


_D = TypeVar("_D", bound=Dto)


def _one(cls: type[_D], data: object) -> _D:
    try:
        return cls.from_dict(data)
    except SchemaError as exc:
        raise ApplianceError(f"The appliance answered something this dashboard does not "
                             f"understand ({exc}). Are both the same version?",
                             "Unexpected answer") from None


def _many(cls: type[_D], data: object) -> list[_D]:
    if not isinstance(data, list):
        raise ApplianceError("The appliance answered something this dashboard does not "
                             "understand (expected a list). Are both the same version?",
                             "Unexpected answer")
    return [_one(cls, d) for d in data]


_NOT_JSON = object()


class UnixSocketAdminClient:
    """The admin API over its Unix socket: typed methods (the TUI's ``AdminClient`` protocol)
    and :meth:`request` (raw JSON, for the CLI). ``async with`` closes it."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=str(self.socket_path))
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def __aenter__(self) -> UnixSocketAdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _unreachable(self) -> ApplianceUnreachable:
        return ApplianceUnreachable(
            f"Hearth is not running (no admin API at {self.socket_path}). Start it with "
            "`hearth serve` or `systemctl start hearth`, or pass --data-dir/--admin-socket.",
            "Connection lost")

    def _denied(self) -> ApplianceError:
        return ApplianceError(f"permission denied on {self.socket_path}: run as the service "
                              "user (sudo -u hearth hearth …) or as root", "Permission denied")

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      params: dict[str, str] | None = None) -> Any:
        """One admin API call; the decoded JSON answer (``None`` for an empty body)."""
        try:
            async with self._http().request(method, f"http://hearth{path}", json=body,
                                            params=params) as resp:
                text = await resp.text()
                try:
                    data = json.loads(text) if text else None
                except json.JSONDecodeError:
                    data = _NOT_JSON
                if resp.status >= 400:
                    info = data if isinstance(data, dict) else {}
                    raise ApplianceError(str(info.get("error") or text or resp.reason),
                                         f"Request refused ({resp.status})",
                                         field=info.get("field"), status=resp.status)
                if data is _NOT_JSON:
                    raise ApplianceError("the admin API answered with something that is not "
                                         "JSON", "Unexpected answer")
                return data
        except PermissionError:
            raise self._denied() from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PermissionError):
                raise self._denied() from None
            raise self._unreachable() from None
        except (OSError, aiohttp.ClientError, TimeoutError):
            raise self._unreachable() from None


    async def _maybe(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await self.request("GET", path, params=params)
        except ApplianceError as exc:
            if exc.status in (404, 405):
                return None
            raise

    async def get_status(self) -> Status:
        return _one(Status, await self.request("GET", "/v1/status"))

    async def list_streams(self) -> list[AdminStream]:
        return _many(AdminStream, await self.request("GET", "/v1/streams"))

    async def list_recordings(self) -> list[AdminRecording]:
        return [AdminRecording.from_dict(d) for d in await self.request("GET", "/v1/recordings")]

    async def nostr_info(self) -> dict[str, Any]:
        data = await self.request("GET", "/v1/nostr")
        return data if isinstance(data, dict) else {}

    async def pair_bunker(self, uri: str) -> dict[str, Any]:
        data = await self.request("POST", "/v1/nostr/signer", {"bunker": uri})
        return data if isinstance(data, dict) else {}

    async def start_nostrconnect(self) -> str:
        data = await self.request("POST", "/v1/nostr/signer", {"nostrconnect": True})
        return str(data.get("uri", "")) if isinstance(data, dict) else ""

    async def unpair_signer(self) -> None:
        await self.request("DELETE", "/v1/nostr/signer")

    async def keep_recording(self, broadcast_id: str, keep: bool) -> AdminRecording:
        return AdminRecording.from_dict(await self.request(
            "POST", f"/v1/recordings/{quote(broadcast_id, safe='')}/keep", {"keep": keep}))

    async def delete_recording(self, broadcast_id: str) -> None:
        await self.request("DELETE", f"/v1/recordings/{quote(broadcast_id, safe='')}")

    async def list_webhooks(self) -> list[AdminWebhook]:
        return _many(AdminWebhook, await self.request("GET", "/v1/webhooks"))

    async def test_webhook(self, webhook_id: str) -> str:
        data = await self.request("POST", f"/v1/webhooks/{quote(webhook_id, safe='')}/test")
        return _one(WebhookTestQueued, data).delivery_id

    async def list_restream_targets(self, channel_id: str) -> list[RestreamTarget]:
        return _many(RestreamTarget, await self.request(
            "GET", f"/v1/channels/{quote(channel_id, safe='')}/restream"))

    async def broadcast_analytics(self, broadcast_id: str) -> BroadcastAnalytics:
        data = await self.request("GET", f"/v1/analytics/broadcasts/{quote(broadcast_id, safe='')}")
        return _one(BroadcastAnalytics, data)

    async def channel_analytics(self, channel_id: str, days: int = 30) -> ChannelAnalytics:
        data = await self.request("GET", f"/v1/analytics/channels/{quote(channel_id, safe='')}",
                                  params={"days": str(days)})
        return _one(ChannelAnalytics, data)

    async def list_events(self, limit: int = 100) -> list[LogEvent]:
        data = await self.request("GET", "/v1/events", params={"limit": str(limit)})
        return _many(LogEvent, data)

    async def list_chat(self, stream_id: str, limit: int = 200) -> list[ChatMessage] | None:
        data = await self._maybe(f"/v1/streams/{stream_id}/chat", {"limit": str(limit)})
        return None if data is None else _many(ChatMessage, data)

    async def list_relays(self) -> list[RelayInfo] | None:
        data = await self._maybe("/v1/relays")
        return None if data is None else _many(RelayInfo, data)

    async def create_stream(self, draft: StreamDraft) -> StreamCredentials:
        # A channel (its key lasts; each publish is a broadcast). The answer is a superset of
        # the pre-channels credentials.
        data = await self.request("POST", "/v1/channels", draft.to_dict())
        return _one(StreamCredentials, data)

    async def update_stream(self, stream_id: str, draft: StreamDraft) -> AdminStream:
        data = await self.request("PATCH", f"/v1/streams/{stream_id}", draft.to_dict())
        return _one(AdminStream, data)

    async def end_stream(self, stream_id: str) -> AdminStream:
        return _one(AdminStream, await self.request("POST", f"/v1/streams/{stream_id}/end"))

    async def rotate_key(self, stream_id: str) -> StreamCredentials:
        data = await self.request("POST", f"/v1/streams/{stream_id}/rotate-key")
        return _one(StreamCredentials, data)

    async def plan_broadcast(self, channel_id: str, title: str, starts: float) -> None:
        await self.request("POST", "/v1/broadcasts",
                         {"channel_id": channel_id, "title": title, "starts": starts})

    async def create_grant(self, ident: str, expires_in: float) -> GrantCreated:
        """``hearth grant create ID --expires …``: a viewer link for a channel or broadcast."""
        data = await self.request("POST", "/v1/grants", {"id": ident, "expires_in": expires_in})
        return _one(GrantCreated, data)

    async def get_goal(self, stream_id: str) -> StreamGoal | None:
        """The zap goal of a channel's live or latest broadcast (``None``: none set)."""
        data = await self.request("GET", f"/v1/streams/{quote(stream_id, safe='')}/goal")
        return None if data is None else _one(StreamGoal, data)

    async def set_goal(self, stream_id: str, amount_sats: int, title: str) -> StreamGoal:
        """Publish a new NIP-75 zap goal for it (``hearth nostr goal ID --sats N --title T``)."""
        data = await self.request("POST", f"/v1/streams/{quote(stream_id, safe='')}/goal",
                                  {"amount_sats": amount_sats, "title": title})
        return _one(StreamGoal, data)

    async def send_chat(self, stream_id: str, content: str,
                        reply_to: str | None = None) -> None:
        body: dict[str, Any] = {"content": content}
        if reply_to:
            body["reply_to"] = reply_to
        await self.request("POST", f"/v1/streams/{stream_id}/chat", body)

    async def hide_message(self, stream_id: str, event_id: str) -> None:
        await self.request("POST", f"/v1/streams/{stream_id}/chat/{event_id}/hide")

    async def pin_message(self, stream_id: str, event_id: str) -> None:
        await self.request("POST", f"/v1/streams/{stream_id}/chat/{event_id}/pin")

    async def mute_pubkey(self, pubkey: str) -> None:
        await self.request("POST", "/v1/mutes", {"pubkey": pubkey})

    async def list_blocks(self) -> list[AddressBlock]:
        data = await self._maybe("/v1/blocks")
        return [] if data is None else _many(AddressBlock, data)

    async def lift_block(self, address: str) -> None:
        await self.request("DELETE", f"/v1/blocks/{quote(address, safe='')}")

    async def events(self) -> AsyncIterator[AdminEvent]:
        # No total timeout: the stream is long-lived; the server's 15 s heartbeat lets a
        # 45 s read timeout notice a dead peer.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=45)
        try:
            async with self._http().get("http://hearth/v1/events/stream",
                                        timeout=timeout) as resp:
                if resp.status != 200:
                    raise ApplianceError(f"event stream refused ({resp.status})",
                                         status=resp.status)
                parser = SseParser()
                async for chunk in resp.content.iter_any():
                    for event in typed_events(parser.feed(chunk)):
                        yield event
        except PermissionError:
            raise self._denied() from None
        except (OSError, aiohttp.ClientError, TimeoutError, SchemaError):
            # SchemaError: a frame longer than the parser accepts; reconnecting resyncs.
            raise self._unreachable() from None
        raise self._unreachable()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
