"""NIP-53 / NIP-09 / NIP-57 builders and parsers."""

from __future__ import annotations

import json

import pytest

from relay_client import nip19
from relay_client.event import UnsignedEvent
from relay_client.live import (
    activity_address,
    bolt11_amount_msats,
    build_chat_message,
    build_deletion,
    build_live_event,
    chat_activity_address,
    parse_activity_address,
    parse_zap_amount_msats,
)
from relay_client.signing import PrivateKeySigner

HOST = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"


def test_live_event_tags(alice: PrivateKeySigner) -> None:
    """NIP-53 30311: d first, HLS first among streaming, lowercase host role."""
    u = build_live_event(
        d="abc",
        title="Title",
        summary="Sum",
        image="https://x/i.jpg",
        tags=["music", "live"],
        streaming=["https://x/whep", "https://x/live/index.m3u8?token=1"],
        recording=None,
        starts=1000,
        ends=None,
        status="live",
        current_participants=3,
        total_participants=10,
        host_pubkey=HOST,
        host_relay="",
        relays=["wss://a", "wss://b"],
        pinned=["ab" * 32],
        created_at=2000,
    )
    assert u.kind == 30311 and u.created_at == 2000 and u.content == ""
    assert u.tags == (
        ("d", "abc"),
        ("title", "Title"),
        ("summary", "Sum"),
        ("image", "https://x/i.jpg"),
        ("t", "music"),
        ("t", "live"),
        ("streaming", "https://x/live/index.m3u8?token=1"),
        ("streaming", "https://x/whep"),
        ("starts", "1000"),
        ("status", "live"),
        ("current_participants", "3"),
        ("total_participants", "10"),
        ("p", HOST, "", "host"),
        ("relays", "wss://a", "wss://b"),
        ("pinned", "ab" * 32),
    )
    assert alice.sign_event(u).verify()


def test_live_event_validation() -> None:
    with pytest.raises(ValueError, match="status must be one of planned, live, ended"):
        build_live_event(d="x", status="LIVE")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d must be a non-empty"):
        build_live_event(d="", status="live")
    with pytest.raises(ValueError, match="host_pubkey must be 64 lowercase hex"):
        build_live_event(d="x", status="live", host_pubkey=HOST.upper())


def test_activity_address_and_naddr(alice: PrivateKeySigner) -> None:
    addr = activity_address(alice.public_key, "my:stream")
    assert addr == f"30311:{alice.public_key}:my:stream"
    assert parse_activity_address(addr) == (30311, alice.public_key, "my:stream")
    naddr = nip19.encode_naddr("my:stream", alice.public_key, 30311)
    assert nip19.decode(naddr)[1] == nip19.NAddr("my:stream", alice.public_key, 30311)
    with pytest.raises(ValueError, match="not an addressable-event coordinate"):
        parse_activity_address("nope")


def test_chat_message(alice: PrivateKeySigner) -> None:
    addr = activity_address(HOST, "s1")
    u = build_chat_message(addr, "hello", reply_to="cd" * 32, created_at=5)
    assert u.kind == 1311
    assert u.tags == (("a", addr, "", "root"), ("e", "cd" * 32, "", "reply"))
    ev = alice.sign_event(u)
    assert chat_activity_address(ev) == addr
    other = alice.sign_event(UnsignedEvent(kind=1311, content="x", tags=(), created_at=5))
    assert chat_activity_address(other) is None


def test_deletion() -> None:
    """NIP-09: kind 5 with e/a tags and k tags for the kinds."""
    addr = activity_address(HOST, "s1")
    u = build_deletion(event_ids=["ab" * 32], addresses=[addr], kinds=[1311], reason="done")
    assert u.kind == 5 and u.content == "done"
    assert u.tags == (("e", "ab" * 32), ("a", addr), ("k", "1311"), ("k", "30311"))
    with pytest.raises(ValueError, match="at least one"):
        build_deletion()


@pytest.mark.parametrize(
    ("invoice", "msats"),
    [
        ("lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyq", 250_000_000),
        ("lnbc20m1pvjluezpp5", 2_000_000_000),
        ("lnbc10n1pvjluez", 1_000),
        ("lnbc1500p1xyz", 150),
        ("lntb1u1xyz", 100_000),
        ("lnbcrt50n1xyz", 5_000),
        ("LNBC1M1XYZ", 100_000_000),
        ("lnbc1pvjluezpp5", None),
    ],
)
def test_bolt11_amounts(invoice: str, msats: int | None) -> None:
    assert bolt11_amount_msats(invoice) == msats


@pytest.mark.parametrize("invoice", ["lnxx1xyz", "nope", "lnbc1501p1xyz", "lnbcm1xyz"])
def test_bolt11_garbage(invoice: str) -> None:
    with pytest.raises(ValueError):
        bolt11_amount_msats(invoice)


def _receipt(signer: PrivateKeySigner, bolt11: str, amount_tag: str | None) -> object:
    tags = [["p", HOST]] + ([["amount", amount_tag]] if amount_tag is not None else [])
    request = {"kind": 9734, "content": "", "tags": tags, "pubkey": "00" * 32}
    return signer.sign_event(UnsignedEvent(
        kind=9735,
        content="",
        tags=(("p", HOST), ("bolt11", bolt11), ("description", json.dumps(request))),
        created_at=1,
    ))


def test_zap_amount(alice: PrivateKeySigner) -> None:
    """NIP-57: the invoice amount, which must equal the request's amount tag."""
    assert parse_zap_amount_msats(_receipt(alice, "lnbc10u1xyz", "1000000")) == 1_000_000  # type: ignore[arg-type]
    assert parse_zap_amount_msats(_receipt(alice, "lnbc10u1xyz", None)) == 1_000_000  # type: ignore[arg-type]
    assert parse_zap_amount_msats(_receipt(alice, "lnbc10u1xyz", "999")) is None  # type: ignore[arg-type]
    assert parse_zap_amount_msats(_receipt(alice, "lnbc1xyz", "1000")) is None  # type: ignore[arg-type]
    assert parse_zap_amount_msats(_receipt(alice, "garbage", None)) is None  # type: ignore[arg-type]


def test_host_role_is_read_case_insensitively(alice: PrivateKeySigner) -> None:
    """NIP-53's example writes ``Host``; zap.stream writes ``host``: both name the host."""
    from relay_client.live import host_pubkeys

    ev = alice.sign_event(UnsignedEvent(kind=30311, content="", created_at=1, tags=(
        ("d", "x"), ("p", "aa" * 32, "", "Host"), ("p", "bb" * 32, "", "host"),
        ("p", "cc" * 32, "", "Speaker"), ("p", "dd" * 32), ("p", "zz", "", "host"))))
    assert host_pubkeys(ev) == ["aa" * 32, "bb" * 32]
