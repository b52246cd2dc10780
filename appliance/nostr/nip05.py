"""NIP-05 identifiers (``name@domain``), verified lazily and only when enabled.

Off by default (``nostr.nip05_verify``): verifying means this box makes HTTPS requests to a
domain a chatter chose. When on, each (identifier, pubkey) is checked at most once a day, one
request at a time, with a short timeout, a small body limit and no redirects (NIP-05: "MUST
NOT follow redirects"), and a name is only *shown* with its identifier after it verified.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable

import aiohttp

from relay_client.jsonbound import JsonBoundError, decode_bounded

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
VERIFY_EVERY = 24 * 3600.0
_LOCAL = re.compile(r"^[a-z0-9._-]{1,64}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class Nip05Error(ValueError):
    """An identifier or a ``nostr.json`` answer is malformed."""


def parse_nip05(identifier: str) -> tuple[str, str]:
    """``(local, domain)`` of ``local@domain`` (NIP-05: local part ``a-z0-9-_.``).

    Raises:
        Nip05Error: anything else (case is folded first).
    """
    if not isinstance(identifier, str) or len(identifier) > 320:
        raise Nip05Error("identifier too long")
    local, sep, domain = identifier.strip().lower().partition("@")
    if not sep:
        local, domain = "_", local  # a bare domain means "_@domain"
    if not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise Nip05Error("not a name@domain identifier")
    return local, domain


def names_match(body: bytes, local: str, pubkey: str) -> bool:
    """Whether a ``nostr.json`` body maps ``local`` to ``pubkey``.

    Raises:
        Nip05Error: not a JSON object with a ``names`` object.
    """
    try:
        obj = decode_bounded(body, MAX_BODY_BYTES, "nostr.json")
    except JsonBoundError as exc:
        raise Nip05Error(str(exc)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("names"), dict):
        raise Nip05Error("nostr.json has no names object")
    value = obj["names"].get(local)
    return isinstance(value, str) and value.lower() == pubkey


def display(identifier: str) -> str:
    """How a verified identifier is shown (``_@domain`` as ``domain``)."""
    local, domain = parse_nip05(identifier)
    return domain if local == "_" else f"{local}@{domain}"


class Nip05Verifier:
    """Verifies identifiers one at a time; remembers results for :data:`VERIFY_EVERY`.

    Args:
        url_for: ``(local, domain) -> URL`` (tests point it at a local server).
    """

    def __init__(self, *, timeout: float = 5.0, cache_size: int = 5000,
                 url_for: Callable[[str, str], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.cache_size = cache_size
        self.url_for = url_for or (lambda local, domain:
                                   f"https://{domain}/.well-known/nostr.json?name={local}")
        self._clock = clock
        self._results: OrderedDict[tuple[str, str], tuple[bool, float]] = OrderedDict()
        self._lock = asyncio.Lock()

    def known(self, identifier: str, pubkey: str) -> bool | None:
        """A cached, still fresh result, or ``None``."""
        hit = self._results.get((identifier, pubkey))
        if hit is None or self._clock() - hit[1] >= VERIFY_EVERY:
            return None
        return hit[0]

    async def verify(self, identifier: str, pubkey: str) -> bool:
        """Check (or recall) that ``identifier`` points at ``pubkey``. Never raises."""
        cached = self.known(identifier, pubkey)
        if cached is not None:
            return cached
        async with self._lock:  # one outbound request at a time
            try:
                local, domain = parse_nip05(identifier)
                ok = await self._fetch(local, domain, pubkey)
            except (Nip05Error, aiohttp.ClientError, TimeoutError, OSError) as exc:
                logger.debug("nip05 %s: %s", identifier[:80], exc)
                ok = False
        self._results[(identifier, pubkey)] = (ok, self._clock())
        self._results.move_to_end((identifier, pubkey))
        while len(self._results) > self.cache_size:
            self._results.popitem(last=False)
        return ok

    async def _fetch(self, local: str, domain: str, pubkey: str) -> bool:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
                self.url_for(local, domain), allow_redirects=False) as resp:
            if resp.status != 200:
                return False
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            return names_match(body, local, pubkey)
