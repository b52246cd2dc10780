"""NIP-01 event serialization, id, schema validation and verification."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_client.event import (
    MAX_EVENT_BYTES,
    MAX_TAGS,
    EventError,
    NostrEvent,
    UnsignedEvent,
    compute_id,
    serialize_for_id,
)
from relay_client.signing import PrivateKeySigner

PK = "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"


def _signed(signer: PrivateKeySigner, **kw: object) -> NostrEvent:
    fields: dict[str, object] = {
        "kind": 1,
        "content": "hello",
        "tags": (),
        "created_at": 1700000000,
    }
    fields.update(kw)
    return signer.sign_event(UnsignedEvent(**fields))  # type: ignore[arg-type]


def test_serialization_is_compact_utf8_array() -> None:
    """NIP-01: [0,pubkey,created_at,kind,tags,content], no whitespace, UTF-8 verbatim."""
    got = serialize_for_id(PK, 1, 1311, (("a", "30311:x:y", "", "root"),), "héllo ☃ 🎥")
    assert got == ('[0,"' + PK + '",1,1311,[["a","30311:x:y","","root"]],"héllo ☃ 🎥"]').encode()


@pytest.mark.parametrize(
    ("content", "escaped"),
    [
        ("\n", "\\n"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("\r", "\\r"),
        ("\t", "\\t"),
        ("\b", "\\b"),
        ("\f", "\\f"),
        # Other C0 controls cannot be raw in JSON: lowercase \u00XX like JSON.stringify.
        ("\x00", "\\u0000"),
        ("\x1f", "\\u001f"),
        # Everything else verbatim, including DEL, U+2028 and non-BMP characters.
        ("\x7f", "\x7f"),
        ("\u2028", "\u2028"),
        ("/", "/"),
        ("<>&'", "<>&'"),
    ],
)
def test_nip01_escapes(content: str, escaped: str) -> None:
    """NIP-01: only \\n \\" \\\\ \\r \\t \\b \\f are escaped; all else verbatim."""
    got = serialize_for_id(PK, 0, 1, (), content)
    assert got == f'[0,"{PK}",0,1,[],"{escaped}"]'.encode()


def test_known_id_vector() -> None:
    """The id is sha256 of the serialization (vector computed from the literal bytes)."""
    literal = f'[0,"{PK}",1700000000,1,[["t","nostr"]],"line1\\nline2"]'.encode()
    expected = hashlib.sha256(literal).hexdigest()
    assert compute_id(PK, 1700000000, 1, (("t", "nostr"),), "line1\nline2") == expected


def test_sign_then_verify(alice: PrivateKeySigner) -> None:
    ev = _signed(alice)
    assert ev.pubkey == alice.public_key
    assert ev.id == ev.compute_id()
    assert ev.verify()
    ev.check()


def test_forged_signature_rejected(alice: PrivateKeySigner, bob: PrivateKeySigner) -> None:
    ev = _signed(alice)
    other = _signed(bob)
    forged = NostrEvent(**{**ev.to_dict(), "sig": other.sig, "tags": ev.tags})  # type: ignore[arg-type]
    assert not forged.verify()
    with pytest.raises(EventError, match=r"^event signature is invalid$"):
        forged.check()


def test_mis_hashed_id_rejected(alice: PrivateKeySigner) -> None:
    ev = _signed(alice)
    tampered = NostrEvent.from_dict({**ev.to_dict(), "content": "hello!"})
    assert not tampered.verify()
    with pytest.raises(EventError, match=r"^event id does not match its content \(computed "):
        tampered.check()


def test_json_round_trip(alice: PrivateKeySigner) -> None:
    ev = _signed(alice, tags=(("e", "a" * 64), ("t", "x")), content='quote " and \\ and \n')
    assert NostrEvent.from_json(ev.to_json()) == ev
    assert NostrEvent.from_json(ev.to_json().encode()) == ev


def _base(alice: PrivateKeySigner) -> dict[str, object]:
    return _signed(alice).to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "A" * 64}, "id must be lowercase hex, got uppercase"),
        ({"pubkey": "F" * 64}, "pubkey must be lowercase hex, got uppercase"),
        ({"id": "ab"}, "id must be 64 lowercase hex characters, got 2"),
        ({"id": "g" * 64}, "id must be 64 lowercase hex characters, got 'ggg"),
        ({"sig": "0" * 127}, "sig must be 128 lowercase hex characters, got 127"),
        ({"id": 5}, "id must be a string, got int"),
        ({"kind": "1"}, "kind must be an integer, got str"),
        ({"kind": True}, "kind must be an integer, got bool"),
        ({"kind": 70000}, "kind must be in 0..65535, got 70000"),
        ({"created_at": 1.5}, "created_at must be an integer, got float"),
        ({"created_at": -1}, "created_at must be in 0..9007199254740991, got -1"),
        ({"tags": {}}, "tags must be a list, got dict"),
        ({"tags": [["e", 1]]}, "tags[0][1] must be a string, got int"),
        ({"tags": [None]}, "tags[0] must be a list, got null"),
        ({"tags": [[]]}, "tags[0] must not be empty"),
        ({"content": None}, "content must be a string, got null"),
    ],
)
def test_schema_errors(alice: PrivateKeySigner, change: dict[str, object], message: str) -> None:
    obj = {**_base(alice), **change}
    with pytest.raises(EventError) as info:
        NostrEvent.from_dict(obj)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("name", ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"])
def test_missing_field(alice: PrivateKeySigner, name: str) -> None:
    obj = _base(alice)
    del obj[name]
    with pytest.raises(EventError, match=f"^event is missing field '{name}'$"):
        NostrEvent.from_dict(obj)


def test_not_an_object() -> None:
    with pytest.raises(EventError, match=r"^event must be a JSON object, got array$"):
        NostrEvent.from_json("[]")
    with pytest.raises(EventError, match=r"^event is not valid JSON: "):
        NostrEvent.from_json("{")
    with pytest.raises(EventError, match=r"^event is not valid UTF-8: "):
        NostrEvent.from_json(b"\xff\xfe")


def test_too_many_tags(alice: PrivateKeySigner) -> None:
    obj = {**_base(alice), "tags": [["t", "x"]] * (MAX_TAGS + 1)}
    with pytest.raises(EventError, match=f"^event has {MAX_TAGS + 1} tags, limit is {MAX_TAGS}$"):
        NostrEvent.from_dict(obj)
    # 10k tags (docs/threat-model.md §nostr-events) fails the same cheap way.
    with pytest.raises(EventError, match=r"^event has 10000 tags"):
        NostrEvent.from_dict({**obj, "tags": [["p"]] * 10000})


def test_oversized(alice: PrivateKeySigner) -> None:
    obj = {**_base(alice), "content": "x" * (MAX_EVENT_BYTES - 100)}
    with pytest.raises(EventError, match=f"^event is \\d+ bytes, limit is {MAX_EVENT_BYTES}$"):
        NostrEvent.from_dict(obj)
    with pytest.raises(EventError, match=f"^event is \\d+ bytes, limit is {MAX_EVENT_BYTES}$"):
        NostrEvent.from_json(json.dumps(obj))
    with pytest.raises(EventError, match=f"^event is larger than {MAX_EVENT_BYTES} bytes"):
        NostrEvent.from_dict({**obj, "content": "x" * (MAX_EVENT_BYTES * 4)})


def test_exactly_at_limit_is_accepted(alice: PrivateKeySigner) -> None:
    overhead = len(_signed(alice, content="").to_json().encode())
    ev = _signed(alice, content="x" * (MAX_EVENT_BYTES - overhead))
    assert len(ev.to_json().encode()) == MAX_EVENT_BYTES
    assert NostrEvent.from_json(ev.to_json()) == ev


def test_lone_surrogate_has_no_id(alice: PrivateKeySigner) -> None:
    """A lone surrogate cannot be UTF-8 encoded, so the event has no NIP-01 id."""
    obj = _base(alice)
    text = json.dumps(obj).replace('"hello"', '"\\ud800"')
    ev = NostrEvent.from_json(text)
    assert not ev.verify()
    with pytest.raises(EventError, match="lone surrogate"):
        ev.check()


def test_unsigned_validation() -> None:
    with pytest.raises(EventError, match=r"^kind must be in 0..65535, got -1$"):
        UnsignedEvent(kind=-1, content="", tags=(), created_at=0)


_text = st.text(max_size=50)
_tags = st.lists(st.lists(_text, min_size=1, max_size=4), max_size=5)


@given(
    content=st.text(max_size=200),
    tags=_tags,
    kind=st.integers(0, 65535),
    created_at=st.integers(0, 2**53 - 1),
)
def test_hypothesis_round_trip(
    content: str, tags: list[list[str]], kind: int, created_at: int
) -> None:
    signer = PrivateKeySigner(bytes.fromhex("11" * 32))
    try:
        ev = signer.sign_event(UnsignedEvent(
            kind=kind, content=content, tags=tuple(tuple(t) for t in tags), created_at=created_at
        ))
    except EventError as exc:  # lone surrogates from st.text()
        assert "surrogate" in str(exc)
        return
    assert NostrEvent.from_json(ev.to_json()) == ev
    assert ev.verify()


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_hypothesis_from_json_raises_only_event_error(data: str | bytes) -> None:
    try:
        NostrEvent.from_json(data)
    except EventError:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=8),
        max_leaves=20,
    )
)
def test_hypothesis_from_dict_raises_only_event_error(obj: object) -> None:
    try:
        NostrEvent.from_dict(obj)
    except EventError:
        pass
