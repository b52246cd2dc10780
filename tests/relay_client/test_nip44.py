"""NIP-44 v2 against the official vectors (paulmillr/nip44 ``nip44.vectors.json``, the file
whose sha256 the NIP names), plus hostile-input properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_client import nip44
from relay_client.nip44 import Nip44Error
from relay_client.signing import PrivateKeySigner

VECTORS_PATH = Path(__file__).parent / "data" / "nip44.vectors.json"
VECTORS_SHA256 = "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040"
V2: dict[str, Any] = json.loads(VECTORS_PATH.read_text())["v2"]


def _pub(sec_hex: str) -> bytes:
    return bytes.fromhex(PrivateKeySigner(bytes.fromhex(sec_hex)).public_key)


def test_vectors_file_is_the_one_the_nip_names() -> None:
    assert hashlib.sha256(VECTORS_PATH.read_bytes()).hexdigest() == VECTORS_SHA256


@pytest.mark.parametrize("v", V2["valid"]["get_conversation_key"])
def test_conversation_key(v: dict[str, str]) -> None:
    key = nip44.conversation_key(bytes.fromhex(v["sec1"]), bytes.fromhex(v["pub2"]))
    assert key.hex() == v["conversation_key"]


def test_message_keys() -> None:
    conv = bytes.fromhex(V2["valid"]["get_message_keys"]["conversation_key"])
    for v in V2["valid"]["get_message_keys"]["keys"]:
        ck, cn, hk = nip44.message_keys(conv, bytes.fromhex(v["nonce"]))
        assert (ck.hex(), cn.hex(), hk.hex()) == (v["chacha_key"], v["chacha_nonce"],
                                                  v["hmac_key"])


@pytest.mark.parametrize("unpadded,padded", V2["valid"]["calc_padded_len"])
def test_padding(unpadded: int, padded: int) -> None:
    assert nip44.calc_padded_len(unpadded) == padded


@pytest.mark.parametrize("v", V2["valid"]["encrypt_decrypt"])
def test_encrypt_decrypt(v: dict[str, str]) -> None:
    conv = nip44.conversation_key(bytes.fromhex(v["sec1"]), _pub(v["sec2"]))
    assert conv.hex() == v["conversation_key"]
    # Symmetric: the other side derives the same key.
    assert nip44.conversation_key(bytes.fromhex(v["sec2"]), _pub(v["sec1"])) == conv
    payload = nip44.encrypt(v["plaintext"], conv, bytes.fromhex(v["nonce"]))
    assert payload == v["payload"]
    assert nip44.decrypt(payload, conv) == v["plaintext"]


@pytest.mark.parametrize("v", V2["valid"]["encrypt_decrypt_long_msg"])
def test_long_messages(v: dict[str, Any]) -> None:
    plaintext = v["pattern"] * v["repeat"]
    assert hashlib.sha256(plaintext.encode()).hexdigest() == v["plaintext_sha256"]
    conv = bytes.fromhex(v["conversation_key"])
    payload = nip44.encrypt(plaintext, conv, bytes.fromhex(v["nonce"]))
    assert hashlib.sha256(payload.encode()).hexdigest() == v["payload_sha256"]
    assert nip44.decrypt(payload, conv) == plaintext


@pytest.mark.parametrize("length", V2["invalid"]["encrypt_msg_lengths"])
def test_invalid_lengths(length: int) -> None:
    with pytest.raises(Nip44Error):
        nip44.encrypt("x" * length, b"\x01" * 32)


@pytest.mark.parametrize("v", V2["invalid"]["get_conversation_key"])
def test_invalid_conversation_key(v: dict[str, str]) -> None:
    with pytest.raises(Nip44Error):
        nip44.conversation_key(bytes.fromhex(v["sec1"]), bytes.fromhex(v["pub2"]))


@pytest.mark.parametrize("v", V2["invalid"]["decrypt"], ids=lambda v: v["note"])
def test_invalid_decrypt(v: dict[str, str]) -> None:
    with pytest.raises(Nip44Error):
        nip44.decrypt(v["payload"], bytes.fromhex(v["conversation_key"]))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: base64.b64encode(b).decode())))
def test_decrypt_raises_only_its_error(payload: str) -> None:
    try:
        nip44.decrypt(payload, b"\x02" * 32)
    except Nip44Error:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=500), st.binary(min_size=32, max_size=32))
def test_round_trip_and_tamper(text: str, key: bytes) -> None:
    try:
        payload = nip44.encrypt(text, key)
    except Nip44Error:
        return  # lone surrogates have no UTF-8 form
    assert nip44.decrypt(payload, key) == text
    raw = bytearray(base64.b64decode(payload))
    raw[40] ^= 1
    with pytest.raises(Nip44Error):
        nip44.decrypt(base64.b64encode(bytes(raw)).decode(), key)


def test_oversized_payload_refused_before_decoding() -> None:
    with pytest.raises(Nip44Error, match="size"):
        nip44.decrypt("A" * 10_000_000, b"\x01" * 32)
