"""NIP-19 bech32 entities; vectors from the NIP text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_client import nip19
from relay_client.nip19 import NAddr, NEvent, Nip19Error, NProfile


@pytest.mark.parametrize(
    ("prefix", "hex_value", "bech"),
    [
        (
            "npub",
            "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d",
            "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6",
        ),
        (
            "npub",
            "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e",
            "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",
        ),
        (
            "nsec",
            "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa",
            "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",
        ),
    ],
)
def test_nip_vectors(prefix: str, hex_value: str, bech: str) -> None:
    """NIP-19 "Examples": decode and vice-versa."""
    encode = {"npub": nip19.encode_npub, "nsec": nip19.encode_nsec}[prefix]
    assert encode(hex_value) == bech
    assert nip19.decode(bech) == (prefix, hex_value)


def test_nprofile_vector() -> None:
    text = (
        "nprofile1qqsrhuxx8l9ex335q7he0f09aej04zpazpl0ne2cgukyawd24mayt8gpp4mhxue69uhhytnc9e3k7mgp"
        "z4mhxue69uhkg6nzv9ejuumpv34kytnrdaksjlyr9p"
    )
    expected = NProfile(
        "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d",
        ("wss://r.x.com", "wss://djbas.sadkb.com"),
    )
    assert nip19.decode(text) == ("nprofile", expected)
    assert nip19.encode_nprofile(expected.pubkey, expected.relays) == text


def test_naddr_round_trip() -> None:
    pk = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
    text = nip19.encode_naddr("stream-1", pk, 30311, ["wss://relay.example"])
    assert text.startswith("naddr1")
    assert nip19.decode("nostr:" + text) == (
        "naddr",
        NAddr("stream-1", pk, 30311, ("wss://relay.example",)),
    )


def test_wrong_prefix_and_corruption() -> None:
    npub = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
    with pytest.raises(Nip19Error, match=r"^expected a nsec string, got npub$"):
        nip19.decode_nsec(npub)
    with pytest.raises(Nip19Error, match=r"^bech32 checksum is invalid$"):
        nip19.decode(npub[:-1] + ("q" if npub[-1] != "q" else "p"))
    with pytest.raises(Nip19Error, match=r"^bech32 string mixes upper and lower case$"):
        nip19.decode("Npub" + npub[4:])
    with pytest.raises(Nip19Error, match=r"^invalid bech32 character 'b'$"):
        nip19.decode("npub1b" + npub[6:])
    with pytest.raises(Nip19Error, match=r"^unsupported NIP-19 prefix 'nfoo'$"):
        nip19.decode(nip19.bech32_encode("nfoo", b"x"))
    with pytest.raises(Nip19Error, match=r"^naddr has no kind"):
        nip19.decode(nip19.bech32_encode("naddr", b"\x00\x01d\x02\x20" + bytes(32)))
    with pytest.raises(Nip19Error, match=r"^TLV value for type 0 is truncated$"):
        nip19.decode(nip19.bech32_encode("nevent", b"\x00\x20" + bytes(5)))
    assert nip19.decode(npub.upper()) == nip19.decode(npub)


_hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
_relays = st.lists(
    st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 255), max_size=3
)


@given(
    _hex32, _relays, st.one_of(st.none(), _hex32), st.one_of(st.none(), st.integers(0, 2**32 - 1))
)
def test_hypothesis_nevent(
    event_id: str, relays: list[str], author: str | None, kind: int | None
) -> None:
    text = nip19.encode_nevent(event_id, relays, author, kind)
    assert nip19.decode(text) == ("nevent", NEvent(event_id, tuple(relays), author, kind))


@given(
    st.text(max_size=60).filter(lambda s: len(s.encode()) <= 255),
    _hex32,
    st.integers(0, 65535),
    _relays,
)
def test_hypothesis_naddr(identifier: str, author: str, kind: int, relays: list[str]) -> None:
    try:
        text = nip19.encode_naddr(identifier, author, kind, relays)
    except UnicodeEncodeError:  # lone surrogates have no UTF-8
        return
    assert nip19.decode(text) == ("naddr", NAddr(identifier, author, kind, tuple(relays)))


@given(st.text(max_size=200))
def test_hypothesis_decode_raises_only_nip19_error(text: str) -> None:
    try:
        nip19.decode(text)
    except Nip19Error:
        pass
