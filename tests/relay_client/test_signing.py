"""BIP-340 via coincurve: the official test vectors, sign and verify-only rows alike."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from relay_client.signing import (
    PrivateKeySigner,
    SigningError,
    generate_private_key,
    verify_signature,
)

# bitcoin/bips bip-0340/test-vectors.csv (the final, even-Y revision; rows 0-14 use
# 32-byte messages, which is all NIP-01 signs).
VECTORS = list(csv.DictReader((Path(__file__).parent / "data" / "bip340-test-vectors.csv").open()))


def test_vector_file_complete() -> None:
    assert [int(v["index"]) for v in VECTORS] == list(range(15))


@pytest.mark.parametrize("row", [v for v in VECTORS if v["secret key"]], ids=lambda v: v["index"])
def test_bip340_sign_vectors(row: dict[str, str]) -> None:
    """BIP-340: signing with the given aux_rand reproduces the signature byte for byte."""
    signer = PrivateKeySigner(bytes.fromhex(row["secret key"]))
    assert signer.public_key == row["public key"].lower()
    sig = signer.sign_digest(bytes.fromhex(row["message"]), bytes.fromhex(row["aux_rand"]))
    assert sig.hex() == row["signature"].lower()


@pytest.mark.parametrize("row", VECTORS, ids=lambda v: f"{v['index']}-{v['comment'][:30]}")
def test_bip340_verify_vectors(row: dict[str, str]) -> None:
    """BIP-340: every row's verification result, including the invalid-key/sig rows."""
    expected = row["verification result"] == "TRUE"
    got = verify_signature(
        row["public key"].lower(), bytes.fromhex(row["message"]), row["signature"].lower()
    )
    assert got is expected


def test_verify_garbage_is_false() -> None:
    assert verify_signature("zz" * 32, bytes(32), "00" * 64) is False
    assert verify_signature("00" * 32, bytes(31), "00" * 64) is False
    assert verify_signature("00" * 32, bytes(32), "00" * 63) is False


def test_random_aux_still_verifies() -> None:
    signer = generate_private_key()
    msg = bytes(range(32))
    a, b = signer.sign_digest(msg), signer.sign_digest(msg)
    assert a != b  # fresh aux randomness per signature (BIP-340 default signing)
    assert verify_signature(signer.public_key, msg, a.hex())
    assert verify_signature(signer.public_key, msg, b.hex())


def test_bad_secrets() -> None:
    with pytest.raises(SigningError, match=r"^secret key must be 32 bytes, got 3$"):
        PrivateKeySigner(b"abc")
    with pytest.raises(SigningError, match="not a valid secp256k1 scalar"):
        PrivateKeySigner(bytes(32))
    with pytest.raises(SigningError, match="64 hex characters or an nsec1"):
        PrivateKeySigner.from_secret("nope")


def test_from_secret_hex_and_nsec() -> None:
    # NIP-19 example pair.
    hex_key = "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa"
    nsec = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5"
    assert (
        PrivateKeySigner.from_secret(nsec).public_key
        == PrivateKeySigner.from_secret(hex_key).public_key
    )
    assert PrivateKeySigner.from_secret(hex_key).secret_hex == hex_key


def test_repr_hides_secret() -> None:
    signer = PrivateKeySigner(bytes.fromhex("11" * 32))
    assert "11111111" not in repr(signer)
    assert signer.public_key in repr(signer)
