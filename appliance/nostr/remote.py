"""The operator's NIP-46 remote signer: pairing, persistence, and its state for the operator.

The pairing is kept in ``<data_dir>/nostr-signer.json`` (mode 0600): the *client* key of the
NIP-46 channel, the remote signer's pubkey and relays, and the user pubkey it signs as. The
operator's own secret never touches the box (issue 13); the bunker's one-time ``secret`` is
used for ``connect`` and not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from relay_client import PrivateKeySigner
from relay_client.nip46 import (
    BunkerURI,
    Nip46Error,
    Nip46Signer,
    NostrConnectURI,
    SignerRefused,
    SignerUnavailable,
)

logger = logging.getLogger(__name__)

PAIRING_FILE = "nostr-signer.json"


@dataclass(frozen=True, slots=True)
class Pairing:
    client_secret: str
    signer_pubkey: str
    relays: tuple[str, ...]
    user_pubkey: str


def load_pairing(data_dir: Path) -> Pairing | None:
    """The saved pairing, or ``None`` (a corrupt file is logged and ignored). Blocking."""
    path = data_dir / PAIRING_FILE
    try:
        obj = json.loads(path.read_text())
        pairing = Pairing(str(obj["client_secret"]), str(obj["signer_pubkey"]),
                          tuple(str(r) for r in obj["relays"]), str(obj["user_pubkey"]))
        PrivateKeySigner.from_secret(pairing.client_secret)
        return pairing
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        logger.error("nostr: %s is unreadable; remote signing is off until re-paired", path)
        return None


def save_pairing(data_dir: Path, pairing: Pairing) -> None:
    """Write atomically with mode 0600 (blocking: call in a thread)."""
    path = data_dir / PAIRING_FILE
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"client_secret": pairing.client_secret, "signer_pubkey": pairing.signer_pubkey,
                   "relays": list(pairing.relays), "user_pubkey": pairing.user_pubkey}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_pairing(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PAIRING_FILE).unlink()


class PairingError(ValueError):
    """Pairing failed; the message is for the operator."""


class RemoteSigner:
    """Owns the :class:`Nip46Signer` of the current pairing (if any) and pairing attempts."""

    def __init__(self, data_dir: Path, *, timeout: float) -> None:
        self.data_dir = data_dir
        self.timeout = timeout
        self.signer: Nip46Signer | None = None
        self.pairing: Pairing | None = None
        #: a nostrconnect:// pairing in progress
        self.pending_uri: NostrConnectURI | None = None
        self.pending_error: str | None = None
        self._pending: Nip46Signer | None = None

    async def load(self) -> None:
        pairing = await asyncio.to_thread(load_pairing, self.data_dir)
        if pairing is not None:
            signer = Nip46Signer(PrivateKeySigner.from_secret(pairing.client_secret),
                                 pairing.relays, signer_pubkey=pairing.signer_pubkey,
                                 user_pubkey=pairing.user_pubkey, timeout=self.timeout)
            await signer.start()
            self.signer, self.pairing = signer, pairing

    async def close(self) -> None:
        for s in (self.signer, self._pending):
            if s is not None:
                await s.close()

    @property
    def user_pubkey(self) -> str | None:
        return self.pairing.user_pubkey if self.pairing else None

    async def pair_bunker(self, uri_text: str) -> Pairing:
        """Connect to a ``bunker://`` URI and keep the pairing.

        Raises:
            PairingError: bad URI, refused, or no answer.
        """
        try:
            uri = BunkerURI.parse(uri_text)
        except Nip46Error as exc:
            raise PairingError(str(exc)) from None
        client = PrivateKeySigner.generate()
        signer = Nip46Signer(client, uri.relays, signer_pubkey=uri.signer_pubkey,
                             timeout=self.timeout)
        await signer.start()
        try:
            user = await signer.connect(uri.secret)
        except (SignerUnavailable, SignerRefused, Nip46Error) as exc:
            await signer.close()
            raise PairingError(str(exc)) from None
        return await self._adopt(signer, Pairing(client.secret_hex, uri.signer_pubkey,
                                                 uri.relays, user))

    async def start_nostrconnect(self, relays: tuple[str, ...], name: str,
                                 url: str) -> NostrConnectURI:
        """Show-a-URI pairing: returns the ``nostrconnect://`` URI; :meth:`wait_nostrconnect`
        completes it."""
        if self._pending is not None:
            await self._pending.close()
        client = PrivateKeySigner.generate()
        self._pending = Nip46Signer(client, relays, timeout=self.timeout)
        await self._pending.start()
        self.pending_uri = self._pending.nostrconnect_uri(name=name, url=url)
        self.pending_error = None
        return self.pending_uri

    async def wait_nostrconnect(self, timeout: float = 300.0) -> Pairing | None:
        signer = self._pending
        if signer is None:
            return None
        try:
            user = await signer.accept_nostrconnect(timeout)
        except (SignerUnavailable, SignerRefused, Nip46Error) as exc:
            self.pending_error = str(exc)
            self._pending, self.pending_uri = None, None
            await signer.close()
            return None
        assert signer.signer_pubkey is not None
        self._pending, self.pending_uri = None, None
        return await self._adopt(signer, Pairing(signer.client.secret_hex, signer.signer_pubkey,
                                                 signer.relays, user))

    async def _adopt(self, signer: Nip46Signer, pairing: Pairing) -> Pairing:
        await asyncio.to_thread(save_pairing, self.data_dir, pairing)
        old = self.signer
        self.signer, self.pairing = signer, pairing
        if old is not None:
            await old.close()
        logger.info("nostr: paired with remote signer %s for user %s", pairing.signer_pubkey,
                    pairing.user_pubkey)
        return pairing

    async def restore(self, pairing: Pairing) -> None:
        """Go back to a previous pairing (after a refused new one)."""
        signer = Nip46Signer(PrivateKeySigner.from_secret(pairing.client_secret),
                             pairing.relays, signer_pubkey=pairing.signer_pubkey,
                             user_pubkey=pairing.user_pubkey, timeout=self.timeout)
        await signer.start()
        await self._adopt(signer, pairing)

    async def unpair(self) -> None:
        await asyncio.to_thread(remove_pairing, self.data_dir)
        old, self.signer, self.pairing = self.signer, None, None
        if old is not None:
            await old.close()
