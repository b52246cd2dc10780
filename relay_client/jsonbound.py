"""The one bounded JSON decoder of the library (every peer-supplied JSON text goes here).

docs/threat-model.md §nostr-relays: a peer's JSON is size-checked *before* parsing, must be UTF-8
(``json.loads(bytes)`` would sniff UTF-16/32 from a BOM), and nesting bombs surface as the
caller's own error type instead of ``RecursionError``.
"""

from __future__ import annotations

import json

__all__ = ["JsonBoundError", "decode_bounded", "utf8_size"]


class JsonBoundError(ValueError):
    """The text is too large, not UTF-8, or not JSON (``args[0]`` says which, for humans)."""


def utf8_size(text: str | bytes) -> int:
    """Byte size of ``text`` as UTF-8 (lone surrogates count as 3 bytes, never raise)."""
    return len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))


def decode_bounded(text: str | bytes, limit: int, what: str) -> object:
    """``json.loads`` with a byte limit; ``what`` names the thing in error messages.

    Raises:
        JsonBoundError: larger than ``limit`` bytes, not UTF-8, or not valid JSON.
    """
    size = utf8_size(text)
    if size > limit:
        raise JsonBoundError(f"{what} is {size} bytes, limit is {limit}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonBoundError(f"{what} is not valid UTF-8: {exc.reason}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonBoundError(f"{what} is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise JsonBoundError(f"{what} is not valid JSON: {exc}") from None
