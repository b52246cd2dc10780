"""The TUI's only door to the appliance: the admin API on its Unix socket.

:class:`AdminClient` is the contract the dashboard depends on (tests inject
:class:`tui.testing.FakeAdminClient`); :class:`UnixSocketAdminClient` implements it with
``aiohttp.UnixConnector`` and reads live changes from ``GET /v1/events/stream`` (SSE).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from appliance.api.schema import (
    AdminStream,
    ChatMessage,
    LogEvent,
    RelayInfo,
    Status,
    StreamCredentials,
)


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

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "summary": self.summary, "tags": list(self.tags),
                "image": self.image}


@dataclass(frozen=True, slots=True)
class ApiEvent:
    """One server-sent event: ``kind`` is ``stream|viewers|log|chat|relay``."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


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

    async def send_chat(self, stream_id: str, content: str,
                        reply_to: str | None = None) -> None: ...

    async def hide_message(self, stream_id: str, event_id: str) -> None: ...

    async def pin_message(self, stream_id: str, event_id: str) -> None: ...

    async def mute_pubkey(self, pubkey: str) -> None: ...

    def events(self) -> AsyncIterator[ApiEvent]:
        """Live changes until the connection drops (then raises ApplianceUnreachable)."""
        ...

    async def close(self) -> None: ...


def parse_sse(buffer: str) -> tuple[list[ApiEvent], str]:
    """Split complete SSE frames off ``buffer``; return the events and the unparsed rest.

    Comments (heartbeats) and frames without data are skipped; data that is not a JSON
    object becomes ``{}`` rather than an exception.
    """
    events: list[ApiEvent] = []
    buffer = buffer.replace("\r\n", "\n")
    while "\n\n" in buffer:
        frame, buffer = buffer.split("\n\n", 1)
        kind, data_lines = "message", []
        for line in frame.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data_lines.append(value)
        if not data_lines:
            continue
        try:
            data = json.loads("\n".join(data_lines))
        except json.JSONDecodeError:
            data = {}
        events.append(ApiEvent(kind, data if isinstance(data, dict) else {}))
    return events, buffer


class UnixSocketAdminClient:
    """:class:`AdminClient` over the admin API's Unix socket."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=str(self.socket_path))
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    def _unreachable(self) -> ApplianceUnreachable:
        return ApplianceUnreachable(
            f"No admin API at {self.socket_path}: is `hearth serve` running?",
            "Connection lost")

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None) -> Any:
        try:
            async with self._http().request(method, f"http://hearth{path}", json=body,
                                            params=params) as resp:
                text = await resp.text()
                try:
                    data = json.loads(text) if text else None
                except json.JSONDecodeError:
                    data = None
                if resp.status >= 400:
                    info = data if isinstance(data, dict) else {}
                    raise ApplianceError(str(info.get("error") or text or resp.reason),
                                         f"Request refused ({resp.status})",
                                         field=info.get("field"), status=resp.status)
                return data
        except PermissionError:
            raise ApplianceError(f"Permission denied on {self.socket_path}: run as the "
                                 "service user or root", "Permission denied") from None
        except (OSError, aiohttp.ClientError, TimeoutError):
            raise self._unreachable() from None

    async def _maybe(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await self._call("GET", path, params=params)
        except ApplianceError as exc:
            if exc.status in (404, 405):
                return None
            raise

    async def get_status(self) -> Status:
        return Status.from_dict(await self._call("GET", "/v1/status"))

    async def list_streams(self) -> list[AdminStream]:
        return [AdminStream.from_dict(d) for d in await self._call("GET", "/v1/streams")]

    async def list_events(self, limit: int = 100) -> list[LogEvent]:
        data = await self._call("GET", "/v1/events", params={"limit": str(limit)})
        return [LogEvent.from_dict(d) for d in data]

    async def list_chat(self, stream_id: str, limit: int = 200) -> list[ChatMessage] | None:
        data = await self._maybe(f"/v1/streams/{stream_id}/chat", {"limit": str(limit)})
        return None if data is None else [ChatMessage.from_dict(d) for d in data]

    async def list_relays(self) -> list[RelayInfo] | None:
        data = await self._maybe("/v1/relays")
        return None if data is None else [RelayInfo.from_dict(d) for d in data]

    async def create_stream(self, draft: StreamDraft) -> StreamCredentials:
        data = await self._call("POST", "/v1/streams", draft.to_dict())
        return StreamCredentials.from_dict(data)

    async def update_stream(self, stream_id: str, draft: StreamDraft) -> AdminStream:
        data = await self._call("PATCH", f"/v1/streams/{stream_id}", draft.to_dict())
        return AdminStream.from_dict(data)

    async def end_stream(self, stream_id: str) -> AdminStream:
        return AdminStream.from_dict(await self._call("POST", f"/v1/streams/{stream_id}/end"))

    async def rotate_key(self, stream_id: str) -> StreamCredentials:
        data = await self._call("POST", f"/v1/streams/{stream_id}/rotate-key")
        return StreamCredentials.from_dict(data)

    async def send_chat(self, stream_id: str, content: str,
                        reply_to: str | None = None) -> None:
        body: dict[str, Any] = {"content": content}
        if reply_to:
            body["reply_to"] = reply_to
        await self._call("POST", f"/v1/streams/{stream_id}/chat", body)

    async def hide_message(self, stream_id: str, event_id: str) -> None:
        await self._call("POST", f"/v1/streams/{stream_id}/chat/{event_id}/hide")

    async def pin_message(self, stream_id: str, event_id: str) -> None:
        await self._call("POST", f"/v1/streams/{stream_id}/chat/{event_id}/pin")

    async def mute_pubkey(self, pubkey: str) -> None:
        await self._call("POST", "/v1/mutes", {"pubkey": pubkey})

    async def events(self) -> AsyncIterator[ApiEvent]:
        # No total timeout: the stream is long-lived; the server's 15 s heartbeat lets a
        # 45 s read timeout notice a dead peer.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=45)
        try:
            async with self._http().get("http://hearth/v1/events/stream",
                                        timeout=timeout) as resp:
                if resp.status != 200:
                    raise ApplianceError(f"event stream refused ({resp.status})",
                                         status=resp.status)
                buffer = ""
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                async for chunk in resp.content.iter_any():
                    events, buffer = parse_sse(buffer + decoder.decode(chunk))
                    for event in events:
                        yield event
        except PermissionError:
            raise ApplianceError(f"Permission denied on {self.socket_path}",
                                 "Permission denied") from None
        except (OSError, aiohttp.ClientError, TimeoutError):
            raise self._unreachable() from None
        raise self._unreachable()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
