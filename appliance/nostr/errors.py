"""Errors the Nostr services raise to the API layer."""

from __future__ import annotations


class ChatRejected(ValueError):
    """A chat message was refused; the message is meant for the sender (and ``reason`` is the
    counter it was added to)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NostrNotFound(LookupError):
    """No such chat message in that stream."""


class SignerUnavailableError(RuntimeError):
    """The operator's remote signer cannot sign now (the message says why)."""
