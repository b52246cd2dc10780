"""NIP-53 live activities (kind 30311), live chat (1311), NIP-09 deletion, NIP-57 zap amounts.

Builders take plain values and return :class:`~relay_client.event.UnsignedEvent`; signing
and publishing are the caller's business. Interop notes (reference/nostr-and-peers.md §6):
the host ``p`` tag role is lowercase ``host`` (zap.stream matches it exactly), and the HLS
``.m3u8`` URL must be the first ``streaming`` tag.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from relay_client.event import NostrEvent, UnsignedEvent

logger = logging.getLogger(__name__)

__all__ = [
    "CHAT_KIND",
    "DELETION_KIND",
    "LIVE_ACTIVITY_KIND",
    "ZAP_RECEIPT_KIND",
    "REACTION_KIND",
    "GOAL_KIND",
    "build_goal",
    "build_reaction",
    "zap_sender",
    "ZAP_REQUEST_KIND",
    "LiveStatus",
    "activity_address",
    "bolt11_amount_msats",
    "build_chat_message",
    "build_deletion",
    "build_live_event",
    "chat_activity_address",
    "host_pubkeys",
    "parse_activity_address",
    "parse_zap_amount_msats",
]

LIVE_ACTIVITY_KIND = 30311
CHAT_KIND = 1311
DELETION_KIND = 5
ZAP_REQUEST_KIND = 9734
ZAP_RECEIPT_KIND = 9735
REACTION_KIND = 7
GOAL_KIND = 9041
#: NIP-25 reaction content we accept (a short string: "+", "-", an emoji or :shortcode:)
MAX_REACTION_CHARS = 64

LiveStatus = Literal["planned", "live", "ended"]
_STATUSES = ("planned", "live", "ended")
_HEX = frozenset("0123456789abcdef")


def _now() -> int:
    return int(time.time())


def _check_pubkey(name: str, value: str) -> str:
    if len(value) != 64 or not _HEX.issuperset(value):
        raise ValueError(f"{name} must be 64 lowercase hex characters")
    return value


def activity_address(pubkey: str, d: str, kind: int = LIVE_ACTIVITY_KIND) -> str:
    """The NIP-01/NIP-53 coordinate ``<kind>:<pubkey>:<d>`` used in ``a`` tags."""
    _check_pubkey("pubkey", pubkey)
    return f"{kind}:{pubkey}:{d}"


def parse_activity_address(address: str) -> tuple[int, str, str]:
    """Split ``kind:pubkey:d`` (``d`` may itself contain ``:``).

    Raises:
        ValueError: not of that shape.
    """
    parts = address.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit():
        raise ValueError(f"not an addressable-event coordinate: {address[:80]!r}")
    kind = int(parts[0])
    if kind > 65535:
        raise ValueError(f"kind in coordinate out of range: {kind}")
    return kind, _check_pubkey("coordinate pubkey", parts[1]), parts[2]


def _hls_first(urls: Sequence[str]) -> list[str]:
    # reference §6.2: zap.stream plays the first streaming URL containing ".m3u8";
    # stable-sort HLS playlists to the front, keep the caller's order otherwise.
    return sorted(urls, key=lambda u: 0 if ".m3u8" in u.split("?", 1)[0] else 1)


def _present(*tags: tuple[str, str | None]) -> list[tuple[str, str]]:
    """The ``(name, value)`` tags whose value was given, in order."""
    return [(name, value) for name, value in tags if value is not None]


def _int_str(value: int | None) -> str | None:
    return None if value is None else str(int(value))


def build_live_event(
    *,
    d: str,
    status: LiveStatus,
    title: str | None = None,
    summary: str | None = None,
    image: str | None = None,
    tags: Iterable[str] = (),
    streaming: Sequence[str] = (),
    recording: str | None = None,
    starts: int | None = None,
    ends: int | None = None,
    current_participants: int | None = None,
    total_participants: int | None = None,
    host_pubkey: str | None = None,
    host_relay: str = "",
    relays: Sequence[str] = (),
    pinned: Sequence[str] = (),
    goal: str | None = None,
    extra_tags: Iterable[Sequence[str]] = (),
    created_at: int | None = None,
) -> UnsignedEvent:
    """Build a NIP-53 kind 30311 live activity.

    Args:
        d: the activity identifier (stable across republishes of the same stream).
        status: ``planned`` | ``live`` | ``ended``.
        tags: hashtags, one ``t`` tag each.
        streaming: playback URLs; ``.m3u8`` ones are moved first (zap.stream).
        host_pubkey: hex pubkey named as ``["p", pk, host_relay, "host"]`` (lowercase).
        relays: one ``relays`` tag listing them all (NIP-53).
        pinned: event ids of pinned chat messages, one ``pinned`` tag each.
        created_at: defaults to now; the caller keeps it strictly increasing.

    Raises:
        ValueError: empty ``d``, unknown status, bad pubkey/ids, negative counts.
    """
    if not d:
        raise ValueError("d must be a non-empty identifier")
    if status not in _STATUSES:
        raise ValueError(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
    out: list[tuple[str, ...]] = [("d", d)]
    out.extend(_present(("title", title), ("summary", summary), ("image", image)))
    out.extend(("t", t) for t in tags)
    out.extend(("streaming", url) for url in _hls_first(streaming))
    out.extend(
        _present(("recording", recording), ("starts", _int_str(starts)), ("ends", _int_str(ends)))
    )
    out.append(("status", status))
    for name, count in (
        ("current_participants", current_participants),
        ("total_participants", total_participants),
    ):
        if count is not None:
            if count < 0:
                raise ValueError(f"{name} must be >= 0, got {count}")
            out.append((name, str(int(count))))
    if host_pubkey is not None:
        out.append(("p", _check_pubkey("host_pubkey", host_pubkey), host_relay, "host"))
    if relays:
        out.append(("relays", *relays))
    for event_id in pinned:
        out.append(("pinned", _check_pubkey("pinned event id", event_id)))
    if goal is not None:
        # zap.stream links a NIP-75 goal from the activity with ["goal", <event id>].
        out.append(("goal", _check_pubkey("goal event id", goal)))
    out.extend(tuple(t) for t in extra_tags)
    return UnsignedEvent(
        kind=LIVE_ACTIVITY_KIND,
        content="",
        tags=tuple(out),
        created_at=_now() if created_at is None else created_at,
    )


def build_chat_message(
    activity_addr: str,
    text: str,
    reply_to: str | None = None,
    *,
    relay: str = "",
    created_at: int | None = None,
) -> UnsignedEvent:
    """NIP-53 kind 1311 live chat message ``["a", "30311:<pubkey>:<d>", relay, "root"]``.

    ``reply_to`` (an event id) adds ``["e", id, relay, "reply"]`` for the direct parent.
    """
    parse_activity_address(activity_addr)
    tags: list[tuple[str, ...]] = [("a", activity_addr, relay, "root")]
    if reply_to is not None:
        tags.append(("e", _check_pubkey("reply_to", reply_to), relay, "reply"))
    return UnsignedEvent(
        kind=CHAT_KIND,
        content=text,
        tags=tuple(tags),
        created_at=_now() if created_at is None else created_at,
    )


def build_reaction(
    content: str,
    *,
    activity_addr: str,
    target_id: str | None = None,
    target_pubkey: str | None = None,
    target_kind: int = CHAT_KIND,
    relay: str = "",
    created_at: int | None = None,
) -> UnsignedEvent:
    """NIP-25 kind 7 reaction to a live activity (``target_id`` None) or to one of its chat
    messages. It always carries the activity's ``a`` tag, so one ``#a`` subscription sees
    every reaction of a stream; ``k`` names the reacted kind (NIP-25)."""
    kind, host, _ = parse_activity_address(activity_addr)
    if not content or len(content) > MAX_REACTION_CHARS:
        raise ValueError(f"reaction content must be 1..{MAX_REACTION_CHARS} characters")
    tags: list[tuple[str, ...]] = []
    if target_id is not None:
        tags.append(("e", _check_pubkey("target id", target_id), relay))
        if target_pubkey is not None:
            tags.append(("p", _check_pubkey("target pubkey", target_pubkey)))
        tags.append(("a", activity_addr, relay))
        tags.append(("k", str(target_kind)))
    else:
        tags += [("a", activity_addr, relay), ("p", host), ("k", str(kind))]
    return UnsignedEvent(kind=REACTION_KIND, content=content, tags=tuple(tags),
                         created_at=_now() if created_at is None else created_at)


def build_goal(
    *,
    amount_msats: int,
    title: str,
    relays: Sequence[str],
    activity_addr: str | None = None,
    created_at: int | None = None,
) -> UnsignedEvent:
    """NIP-75 zap goal (kind 9041): ``amount`` in msats, ``relays`` where zaps are tallied,
    the description as content; ``a`` links it to the live activity."""
    if amount_msats <= 0:
        raise ValueError("a goal amount must be positive")
    if not relays:
        raise ValueError("NIP-75: a goal must list relays")
    tags: list[tuple[str, ...]] = [("amount", str(int(amount_msats))), ("relays", *relays)]
    if activity_addr is not None:
        parse_activity_address(activity_addr)
        tags.append(("a", activity_addr))
    tags.append(("alt", f"Zap goal: {title}"))
    return UnsignedEvent(kind=GOAL_KIND, content=title, tags=tuple(tags),
                         created_at=_now() if created_at is None else created_at)


def zap_sender(receipt: NostrEvent) -> tuple[str, str] | None:
    """``(pubkey, comment)`` of who zapped, from the zap request embedded in a kind 9735's
    ``description`` (NIP-57 Appendix E); the receipt's own pubkey is the LNURL server's.
    ``None`` when absent or malformed."""
    if receipt.kind != ZAP_RECEIPT_KIND:
        return None
    description = receipt.first_tag_value("description")
    if description is None or len(description) > 64 * 1024:
        return None
    try:
        request = json.loads(description)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict) or request.get("kind") != ZAP_REQUEST_KIND:
        return None
    pubkey, content = request.get("pubkey"), request.get("content", "")
    if not isinstance(pubkey, str) or len(pubkey) != 64 or not _HEX.issuperset(pubkey):
        return None
    return pubkey, content if isinstance(content, str) else ""


def host_pubkeys(event: NostrEvent) -> list[str]:
    """Pubkeys named host of a 30311 by ``["p", pk, relay, role]`` tags (NIP-53).

    We write the role lowercase (zap.stream matches ``host`` exactly), but read it
    case-insensitively: other clients write ``Host`` (the NIP's own example does).
    """
    return [t[1] for t in event.tags
            if len(t) >= 4 and t[0] == "p" and t[3].casefold() == "host"
            and len(t[1]) == 64 and _HEX.issuperset(t[1])]


def chat_activity_address(event: NostrEvent) -> str | None:
    """The ``30311:…`` coordinate a 1311 chat message belongs to, or ``None``.

    docs/threat-model.md §nostr-events: a 1311 without an ``a`` tag, or for another activity, is
    not ours.
    """
    if event.kind != CHAT_KIND:
        return None
    for value in event.tag_values("a"):
        if value.startswith(f"{LIVE_ACTIVITY_KIND}:"):
            return value
    return None


def build_deletion(
    *,
    event_ids: Sequence[str] = (),
    addresses: Sequence[str] = (),
    kinds: Sequence[int] = (),
    reason: str = "",
    created_at: int | None = None,
) -> UnsignedEvent:
    """NIP-09 deletion request (kind 5) with ``e``, ``a`` and ``k`` tags.

    Kinds of the given coordinates are added as ``k`` tags automatically.
    """
    if not event_ids and not addresses:
        raise ValueError("a deletion request needs at least one event id or address")
    tags: list[tuple[str, ...]] = [("e", _check_pubkey("event id", e)) for e in event_ids]
    all_kinds: list[int] = list(kinds)
    for addr in addresses:
        kind, _, _ = parse_activity_address(addr)
        tags.append(("a", addr))
        all_kinds.append(kind)
    for kind in dict.fromkeys(all_kinds):
        tags.append(("k", str(kind)))
    return UnsignedEvent(
        kind=DELETION_KIND,
        content=reason,
        tags=tuple(tags),
        created_at=_now() if created_at is None else created_at,
    )


# -- NIP-57 zap amounts -------------------------------------------------------------------

# BOLT-11: hrp = "ln" + currency prefix + optional amount + optional multiplier.
_BOLT11_HRP = re.compile(r"^ln(bcrt|bc|tbs|tb|sb)(\d+)?([munp])?$")
# msat per unit of amount: 1 BTC = 10^11 msat.
_MULTIPLIER_MSAT = {"": 10**11, "m": 10**8, "u": 10**5, "n": 100}


def bolt11_amount_msats(invoice: str) -> int | None:
    """Amount of a BOLT-11 invoice in millisatoshi, ``None`` if the invoice has none.

    Only the human-readable part is read (no signature/checksum validation: the
    receipt's authenticity comes from its Nostr signature and the LNURL ``nostrPubkey``).

    Raises:
        ValueError: not a recognisable BOLT-11 invoice.
    """
    text = invoice.strip().lower()
    if text.startswith("lightning:"):
        text = text[len("lightning:") :]
    pos = text.rfind("1")
    if pos < 0:
        raise ValueError("not a BOLT-11 invoice: no separator")
    match = _BOLT11_HRP.match(text[:pos])
    if match is None:
        raise ValueError("not a BOLT-11 invoice: unrecognised human-readable part")
    digits, multiplier = match.group(2), match.group(3) or ""
    if digits is None:
        if multiplier:
            raise ValueError("BOLT-11 multiplier without an amount")
        return None
    amount = int(digits)
    if multiplier == "p":
        # 1 pico-BTC = 0.1 msat; BOLT-11 requires the last digit to be 0.
        if amount % 10:
            raise ValueError("BOLT-11 pico amount is not a whole number of msat")
        return amount // 10
    return amount * _MULTIPLIER_MSAT[multiplier]


def parse_zap_amount_msats(receipt: NostrEvent) -> int | None:
    """Zap amount of a NIP-57 kind 9735 receipt in msat, or ``None`` if not trustworthy.

    The ``bolt11`` invoice amount is the paid amount. If the embedded zap request
    (``description``, kind 9734) carries an ``amount`` tag it MUST equal the invoice
    amount (NIP-57 "Appendix F"); a mismatch, an amountless invoice or garbage gives
    ``None``. Validating the receipt's pubkey against the recipient's LNURL
    ``nostrPubkey`` is the caller's job.
    """
    if receipt.kind != ZAP_RECEIPT_KIND:
        return None
    invoice = receipt.first_tag_value("bolt11")
    if invoice is None:
        return None
    try:
        amount = bolt11_amount_msats(invoice)
    except ValueError:
        return None
    if amount is None:
        return None
    description = receipt.first_tag_value("description")
    if description is not None:
        try:
            request = json.loads(description)
        except (ValueError, RecursionError):
            return None
        if not isinstance(request, dict) or request.get("kind") != ZAP_REQUEST_KIND:
            return None
        tags = request.get("tags")
        if isinstance(tags, list):
            for tag in tags:
                if (
                    isinstance(tag, list)
                    and len(tag) > 1
                    and tag[0] == "amount"
                    and isinstance(tag[1], str)
                ):
                    if not tag[1].isdigit() or int(tag[1]) != amount:
                        logger.debug("zap receipt %s: amount tag != invoice", receipt.id)
                        return None
                    break
    return amount
