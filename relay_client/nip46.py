"""NIP-46 remote signing ("Nostr Connect"), client side: sign with a key that lives elsewhere.

Wire format (NIP-46): kind 24133 events, ``["p", <recipient>]``, content = NIP-44 v2
encrypted JSON — requests ``{"id", "method", "params": [str…]}``, responses ``{"id",
"result", "error"?}``. Two ways to pair:

* ``bunker://<remote-signer-pubkey>?relay=…&secret=…`` — the signer gives the URI; the client
  sends ``connect [remote-signer-pubkey, secret]``;
* ``nostrconnect://<client-pubkey>?relay=…&secret=…&name=…`` — the client shows the URI (text
  or QR); the signer sends a response whose ``result`` is the secret (the client checks it).

Then ``get_public_key`` gives the *user* pubkey (it may differ from the remote-signer
pubkey). The pure codec (URIs, messages, sealing/opening) raises only :class:`Nip46Error`;
:class:`Nip46Signer` is an :class:`~relay_client.signing.AsyncSigner` over its own
:class:`~relay_client.pool.RelayPool` and raises :class:`SignerUnavailable` (no answer in time:
the signer or its relays are down) or :class:`SignerRefused` (the signer said no, or answered
with something that is not a valid signature of what was asked).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import parse_qs, quote, urlsplit

from relay_client import nip44
from relay_client.event import EventError, NostrEvent, UnsignedEvent
from relay_client.jsonbound import JsonBoundError, decode_bounded
from relay_client.pool import PoolConfig, RelayPool
from relay_client.signing import PrivateKeySigner

logger = logging.getLogger(__name__)

__all__ = [
    "NIP46_KIND",
    "BunkerURI",
    "Nip46Error",
    "Nip46Signer",
    "NostrConnectURI",
    "Request",
    "Response",
    "SignerRefused",
    "SignerUnavailable",
    "open_message",
    "parse_message",
    "seal",
]

NIP46_KIND = 24133
#: decrypted NIP-46 message limit (a signed 64 KiB event, JSON-escaped, fits)
MAX_MESSAGE_BYTES = 192 * 1024
MAX_URI_CHARS = 4096
MAX_RELAYS = 16
MAX_ID_CHARS = 64
MAX_PARAMS = 8
_HEX = frozenset("0123456789abcdef")


class Nip46Error(ValueError):
    """A NIP-46 URI or message is malformed (or not for us)."""


class SignerUnavailable(Exception):
    """The remote signer did not answer in time (it, or every relay to it, is down)."""


class SignerRefused(Exception):
    """The remote signer answered with an error, or with an event that does not match."""


def _pubkey(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
        raise Nip46Error(f"{what} must be 64 lowercase hex characters")
    return value


def _relays(values: Sequence[str]) -> tuple[str, ...]:
    relays = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not relays:
        raise Nip46Error("at least one relay= parameter is required")
    if len(relays) > MAX_RELAYS:
        raise Nip46Error(f"at most {MAX_RELAYS} relays")
    for r in relays:
        if not r.startswith(("ws://", "wss://")) or len(r) > 512:
            raise Nip46Error(f"not a ws:// or wss:// relay URL: {r[:80]!r}")
    return relays


def _split(text: str, scheme: str) -> tuple[str, dict[str, list[str]]]:
    if not isinstance(text, str) or len(text) > MAX_URI_CHARS:
        raise Nip46Error(f"a {scheme}:// URI is a string of at most {MAX_URI_CHARS} characters")
    text = text.strip()
    if not text.startswith(f"{scheme}://"):
        raise Nip46Error(f"not a {scheme}:// URI")
    try:
        parts = urlsplit(text)
        query = parse_qs(parts.query, keep_blank_values=False, max_num_fields=64)
    except ValueError as exc:
        raise Nip46Error(f"malformed {scheme}:// URI: {exc}") from None
    return parts.netloc, query


def _query(params: Mapping[str, object]) -> str:
    out: list[str] = []
    for key, value in params.items():
        values = value if isinstance(value, tuple | list) else [value]
        out.extend(f"{key}={quote(str(v), safe='')}" for v in values if v)
    return "&".join(out)


@dataclass(frozen=True, slots=True)
class BunkerURI:
    """``bunker://<signer pubkey>?relay=…&secret=…`` (given by the remote signer)."""

    signer_pubkey: str
    relays: tuple[str, ...]
    secret: str = ""

    @classmethod
    def parse(cls, text: str) -> BunkerURI:
        """Raises :class:`Nip46Error` for anything but a well-formed bunker URI."""
        host, query = _split(text, "bunker")
        secret = (query.get("secret") or [""])[0]
        if len(secret) > 256:
            raise Nip46Error("secret is too long")
        return cls(_pubkey(host, "bunker pubkey"), _relays(query.get("relay", [])), secret)

    def to_uri(self) -> str:
        return f"bunker://{self.signer_pubkey}?" + _query(
            {"relay": self.relays, "secret": self.secret})

    def redacted(self) -> str:
        """The URI without its secret (for logs and the admin API)."""
        return f"bunker://{self.signer_pubkey}?" + _query({"relay": self.relays})


@dataclass(frozen=True, slots=True)
class NostrConnectURI:
    """``nostrconnect://<client pubkey>?relay=…&secret=…&name=…`` (shown by the client)."""

    client_pubkey: str
    relays: tuple[str, ...]
    secret: str
    name: str = ""
    url: str = ""
    perms: str = ""

    @classmethod
    def parse(cls, text: str) -> NostrConnectURI:
        host, query = _split(text, "nostrconnect")
        secret = (query.get("secret") or [""])[0]
        if not secret or len(secret) > 256:
            raise Nip46Error("nostrconnect:// requires a secret of at most 256 characters")
        first = {k: (v[0] if v else "")[:256] for k, v in query.items()}
        return cls(_pubkey(host, "client pubkey"), _relays(query.get("relay", [])), secret,
                   first.get("name", ""), first.get("url", ""), first.get("perms", ""))

    def to_uri(self) -> str:
        return f"nostrconnect://{self.client_pubkey}?" + _query(
            {"relay": self.relays, "secret": self.secret, "perms": self.perms,
             "name": self.name, "url": self.url})


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    method: str
    params: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "method": self.method, "params": list(self.params)},
                          ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    result: str
    error: str | None = None

    def to_json(self) -> str:
        body: dict[str, object] = {"id": self.id, "result": self.result}
        if self.error is not None:
            body["error"] = self.error
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def parse_message(text: str) -> Request | Response:
    """Decode a decrypted NIP-46 message.

    Raises:
        Nip46Error: not JSON, oversized, or not a request/response of the right types.
    """
    try:
        obj = decode_bounded(text, MAX_MESSAGE_BYTES, "NIP-46 message")
    except JsonBoundError as exc:
        raise Nip46Error(str(exc)) from None
    if not isinstance(obj, dict):
        raise Nip46Error("NIP-46 message must be a JSON object")
    msg_id = obj.get("id")
    if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= MAX_ID_CHARS:
        raise Nip46Error(f"id must be a string of 1..{MAX_ID_CHARS} characters")
    if "method" in obj:
        method, params = obj.get("method"), obj.get("params", [])
        if not isinstance(method, str) or not 1 <= len(method) <= 64:
            raise Nip46Error("method must be a string of 1..64 characters")
        if (not isinstance(params, list) or len(params) > MAX_PARAMS
                or not all(isinstance(p, str) for p in params)):
            raise Nip46Error(f"params must be a list of at most {MAX_PARAMS} strings")
        return Request(msg_id, method, tuple(params))
    result, error = obj.get("result", ""), obj.get("error")
    if result is None:
        result = ""
    if not isinstance(result, str):
        raise Nip46Error("result must be a string")
    if error is not None and not isinstance(error, str):
        raise Nip46Error("error must be a string")
    return Response(msg_id, result, error or None)


def seal(message: Request | Response, sender: PrivateKeySigner, recipient: str,
         created_at: int | None = None) -> NostrEvent:
    """Encrypt ``message`` to ``recipient`` and sign the kind 24133 as ``sender``."""
    key = nip44.conversation_key(bytes.fromhex(sender.secret_hex), bytes.fromhex(recipient))
    return sender.sign_event(UnsignedEvent(
        kind=NIP46_KIND, content=nip44.encrypt(message.to_json(), key),
        tags=(("p", recipient),),
        created_at=int(time.time()) if created_at is None else created_at))


def open_message(event: NostrEvent, recipient: PrivateKeySigner) -> Request | Response:
    """Decrypt and parse a kind 24133 addressed to ``recipient`` (verify the event first).

    Raises:
        Nip46Error: wrong kind, not addressed to us, undecryptable or malformed.
    """
    if event.kind != NIP46_KIND:
        raise Nip46Error(f"not a NIP-46 event (kind {event.kind})")
    if recipient.public_key not in event.tag_values("p"):
        raise Nip46Error("NIP-46 event is not addressed to us")
    try:
        key = nip44.conversation_key(bytes.fromhex(recipient.secret_hex),
                                     bytes.fromhex(event.pubkey))
        text = nip44.decrypt(event.content, key)
    except nip44.Nip44Error as exc:
        raise Nip46Error(f"cannot decrypt: {exc}") from None
    return parse_message(text)


def _new_id() -> str:
    return os.urandom(8).hex()


class Nip46Signer:
    """Sign through a remote signer. ``await start()``, then :meth:`connect` (bunker URI) or
    :meth:`accept_nostrconnect`; :meth:`close` when done.

    Args:
        client: this side's own key for the NIP-46 channel (not the user's key).
        relays: the relays the remote signer listens on.
        signer_pubkey: the remote signer's pubkey when known (bunker URI); learned from the
            first valid response in the nostrconnect flow.
        user_pubkey: the user's pubkey when already known (a saved pairing).
        timeout: seconds to wait for each answer.
    """

    def __init__(self, client: PrivateKeySigner, relays: Sequence[str], *,
                 signer_pubkey: str | None = None, user_pubkey: str | None = None,
                 timeout: float = 15.0, pool_config: PoolConfig | None = None) -> None:
        self.client = client
        self.relays = _relays(relays)
        self.signer_pubkey = signer_pubkey
        self.user_pubkey = user_pubkey
        self.timeout = timeout
        self.last_error: str | None = None
        self.last_ok_at: float | None = None
        self._pool = RelayPool(self.relays, signer=client,
                               config=pool_config or PoolConfig(publish_timeout=timeout))
        self._waiting: dict[str, asyncio.Future[Response]] = {}
        self._connect_secret: str | None = None
        self._connect_waiter: asyncio.Future[str] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._pool.start()
        # NIP-46: responses are p-tagged to the client key; "since" keeps stale ones out.
        self._pool.subscribe("nip46", [{"kinds": [NIP46_KIND], "#p": [self.client.public_key],
                                        "since": int(time.time()) - 10}], self._on_event)

    async def close(self) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
        await self._pool.close()

    async def __aenter__(self) -> Nip46Signer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- AsyncSigner ---------------------------------------------------------------------

    @property
    def public_key(self) -> str:
        """The user's pubkey (what ends up in ``pubkey`` of signed events)."""
        if self.user_pubkey is None:
            raise SignerUnavailable("not connected: the user's pubkey is not known yet")
        return self.user_pubkey

    async def sign_event(self, unsigned: UnsignedEvent) -> NostrEvent:
        """Ask the remote signer to sign ``unsigned``; the answer is checked (id, BIP-340,
        pubkey and every field) before it is returned.

        Raises:
            SignerUnavailable: no answer within ``timeout``.
            SignerRefused: an error answer, or a signed event that does not match.
        """
        body = json.dumps({"kind": unsigned.kind, "content": unsigned.content,
                           "tags": [list(t) for t in unsigned.tags],
                           "created_at": unsigned.created_at},
                          ensure_ascii=False, separators=(",", ":"))
        result = await self._call("sign_event", (body,))
        try:
            event = NostrEvent.from_json(result)
            event.check()
        except EventError as exc:
            raise SignerRefused(f"the signer returned an invalid event: {exc}") from None
        if self.user_pubkey is not None and event.pubkey != self.user_pubkey:
            raise SignerRefused("the signer signed with another key than the user's")
        if (event.kind, event.content, event.tags, event.created_at) != (
                unsigned.kind, unsigned.content, unsigned.tags, unsigned.created_at):
            raise SignerRefused("the signer returned a different event than was asked")
        return event

    # -- pairing -------------------------------------------------------------------------

    async def connect(self, secret: str = "") -> str:
        """bunker:// flow: ``connect``, then ``get_public_key``. Returns the user pubkey."""
        if self.signer_pubkey is None:
            raise Nip46Error("connect needs the remote signer's pubkey (bunker URI)")
        result = await self._call("connect", (self.signer_pubkey, secret) if secret
                                  else (self.signer_pubkey,))
        if result not in ("ack", secret) or not result:
            raise SignerRefused(f"unexpected connect answer {result[:40]!r}")
        return await self.fetch_user_pubkey()

    def nostrconnect_uri(self, *, name: str = "Hearth", url: str = "",
                         perms: str = "sign_event:30311,sign_event:1311,sign_event:10000"
                         ) -> NostrConnectURI:
        """The ``nostrconnect://`` URI to show the user (a fresh secret each call)."""
        self._connect_secret = os.urandom(16).hex()
        return NostrConnectURI(self.client.public_key, self.relays, self._connect_secret,
                               name=name, url=url, perms=perms)

    async def accept_nostrconnect(self, timeout: float = 300.0) -> str:
        """nostrconnect:// flow: wait for the signer's answer carrying our secret, then
        ``get_public_key``. Returns the user pubkey.

        Raises:
            SignerUnavailable: nobody answered within ``timeout``.
        """
        if self._connect_secret is None:
            raise Nip46Error("call nostrconnect_uri() first")
        self._connect_waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                self.signer_pubkey = await self._connect_waiter
        except TimeoutError:
            raise SignerUnavailable("no signer answered the nostrconnect:// URI") from None
        finally:
            self._connect_waiter = None
        return await self.fetch_user_pubkey()

    async def fetch_user_pubkey(self) -> str:
        user = await self._call("get_public_key", ())
        self.user_pubkey = _pubkey(user, "get_public_key result")
        return self.user_pubkey

    async def ping(self) -> None:
        if await self._call("ping", ()) != "pong":
            raise SignerRefused("the signer did not answer ping with pong")

    # -- transport -----------------------------------------------------------------------

    async def _call(self, method: str, params: tuple[str, ...]) -> str:
        if self.signer_pubkey is None:
            raise SignerUnavailable("not paired with a remote signer")
        req = Request(_new_id(), method, params)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[req.id] = fut
        try:
            event = seal(req, self.client, self.signer_pubkey)
            deadline = time.monotonic() + self.timeout
            published = await self._pool.publish(event, timeout=self.timeout)
            if not published.accepted:
                reasons = "; ".join(f"{r.relay_url}: {r.message}" for r in published.results)
                self._fail(f"no relay took the request ({reasons or 'no relays'})")
            remaining = max(0.1, deadline - time.monotonic())
            try:
                async with asyncio.timeout(remaining):
                    response = await fut
            except TimeoutError:
                self._fail(f"no answer to {method} within {self.timeout:g} s")
        finally:
            self._waiting.pop(req.id, None)
        if response.error:
            if response.result == "auth_url":
                self.last_error = f"the signer asks for approval at {response.error[:300]}"
            else:
                self.last_error = f"the signer refused {method}: {response.error[:300]}"
            raise SignerRefused(self.last_error)
        self.last_error, self.last_ok_at = None, time.time()
        return response.result

    def _fail(self, message: str) -> NoReturn:
        self.last_error = message
        raise SignerUnavailable(message)

    def _on_event(self, event: NostrEvent, relay: str) -> None:
        # The pool has verified id and signature.
        if self.signer_pubkey is not None and event.pubkey != self.signer_pubkey:
            return
        try:
            msg = open_message(event, self.client)
        except Nip46Error as exc:
            logger.debug("nip46: dropped message from %s: %s", event.pubkey[:12], exc)
            return
        if not isinstance(msg, Response):
            return
        waiter = self._connect_waiter
        if (self.signer_pubkey is None and waiter is not None and self._connect_secret
                and msg.result == self._connect_secret):
            if not waiter.done():
                waiter.set_result(event.pubkey)
            return
        fut = self._waiting.get(msg.id)
        if fut is not None and not fut.done():
            fut.set_result(msg)
