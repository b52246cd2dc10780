"""Nostr identities of the appliance: its own service key and the operator's.

The service key is generated on first start and kept as 64 hex characters in
``<data_dir>/nostr.key`` (mode 0600, created with O_EXCL so no other mode ever exists).
Secrets are never logged and never appear in a repr. NIP-46 remote signing is not supported:
to sign as the operator, import their secret key through ``nostr.operator_key_file``.
"""

from __future__ import annotations

import os
from pathlib import Path

from relay_client import PrivateKeySigner
from relay_client.nip19 import Nip19Error, decode_npub

KEY_FILE = "nostr.key"
_HEX = frozenset("0123456789abcdef")


class NostrKeyError(ValueError):
    """A configured key is malformed or unreadable (the message never contains the key)."""


def parse_pubkey(text: str) -> str:
    """Hex pubkey from ``npub1…`` or 64 hex characters (any case).

    Raises:
        ValueError: neither form.
    """
    value = text.strip()
    if value.startswith("npub1"):
        try:
            return decode_npub(value)
        except Nip19Error as exc:
            raise ValueError(f"not a valid npub: {exc}") from None
    lowered = value.lower()
    if len(lowered) == 64 and _HEX.issuperset(lowered):
        return lowered
    raise ValueError("a pubkey must be an npub1… string or 64 hex characters")


def load_or_create_service_key(data_dir: Path) -> PrivateKeySigner:
    """The appliance's own key; generated (0600) on first call. Blocking file I/O: call it
    before the loop serves requests or in a thread."""
    path = data_dir / KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        signer = PrivateKeySigner.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(signer.secret_hex + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return signer
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    try:
        return PrivateKeySigner.from_secret(text)
    except ValueError:
        raise NostrKeyError(f"{path}: not a valid Nostr secret key (hex or nsec)") from None


def load_operator_key(path: Path) -> PrivateKeySigner:
    """Import the operator's secret key (hex or ``nsec1…``) from ``path``.

    Raises:
        NostrKeyError: unreadable or malformed (the message names the file, never the key).
    """
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise NostrKeyError(f"cannot read operator key file {path}: {exc.strerror}") from None
    try:
        return PrivateKeySigner.from_secret(text)
    except ValueError:
        raise NostrKeyError(f"{path}: not a valid Nostr secret key (hex or nsec)") from None
