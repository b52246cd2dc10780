"""Sans-IO NIP-01/NIP-42 codec: one test per rule, exact error strings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.messages import (
    MAX_FRAME_BYTES,
    Auth,
    Closed,
    Eose,
    EventMessage,
    InvalidEventMessage,
    Notice,
    Ok,
    RelayProtocolError,
    auth_message,
    build_auth_event,
    close_message,
    event_message,
    filter_matches,
    parse_relay_message,
    req_message,
)
from relay_client.signing import PrivateKeySigner

EID = "ab" * 32


@pytest.fixture
def event(alice: PrivateKeySigner) -> NostrEvent:
    return alice.sign_event(UnsignedEvent(
        kind=1311, content="hi", tags=(("a", "30311:" + "cd" * 32 + ":s1"),), created_at=100
    ))


def test_parse_event(event: NostrEvent) -> None:
    frame = json.dumps(["EVENT", "sub", event.to_dict()])
    assert parse_relay_message(frame) == EventMessage("sub", event)
    assert parse_relay_message(frame.encode()) == EventMessage("sub", event)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (["OK", EID, True, ""], Ok(EID, True, "")),
        (["OK", EID, False, "auth-required: sign in"], Ok(EID, False, "auth-required: sign in")),
        (["EOSE", "s"], Eose("s")),
        (["CLOSED", "s", "error: shutting down"], Closed("s", "error: shutting down")),
        (["NOTICE", "hello"], Notice("hello")),
        (["AUTH", "challenge123"], Auth("challenge123")),
    ],
)
def test_parse_simple(frame: list[object], expected: object) -> None:
    assert parse_relay_message(json.dumps(frame)) == expected


def test_ok_prefix() -> None:
    assert Ok(EID, False, "auth-required: x").prefix == "auth-required"
    assert Ok(EID, True, "").prefix == ""
    assert Closed("s", "no prefix here: really").prefix == ""


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("nope", "frame is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"a":1}', "frame must be a JSON array, got object"),
        ("[]", "frame is an empty array"),
        ("[1]", "message type must be a string, got number"),
        ('["EVENT","s"]', "EVENT frame must have 3 elements, got 2"),
        ('["EVENT",1,{}]', "EVENT subscription id must be a string, got number"),
        ('["EVENT","",{}]', "EVENT subscription id must be 1..64 characters, got 0"),
        ('["OK","' + EID + '",true]', "OK frame must have 4 elements, got 3"),
        ('["OK","' + EID + '","true",""]', "OK status must be a boolean, got string"),
        ('["OK","",false,"invalid: x"]', "OK event id must be 64 lowercase hex characters"),
        ('["OK","' + EID.upper() + '",true,""]', "OK event id must be 64 lowercase hex characters"),
        ('["OK","' + EID + '",true,null]', "OK message must be a string, got null"),
        ('["EOSE"]', "EOSE frame must have 2 elements, got 1"),
        ('["EOSE","s","x"]', "EOSE frame must have 2 elements, got 3"),
        ('["CLOSED","s"]', "CLOSED frame must have 3 elements, got 2"),
        ('["NOTICE",5]', "NOTICE message must be a string, got number"),
        ('["AUTH",""]', "AUTH challenge must be 1..1024 characters, got 0"),
        ('["AUTH",["x"]]', "AUTH challenge must be a string, got array"),
        ('["COUNT","s",{"count":1}]', "unknown message type 'COUNT'"),
    ],
)
def test_malformed(frame: str, message: str) -> None:
    with pytest.raises(RelayProtocolError) as info:
        parse_relay_message(frame)
    assert str(info.value) == message
    assert not isinstance(info.value, InvalidEventMessage)


def test_invalid_event_in_frame(event: NostrEvent) -> None:
    bad = {**event.to_dict(), "kind": "1311"}
    with pytest.raises(InvalidEventMessage) as info:
        parse_relay_message(json.dumps(["EVENT", "sub", bad]))
    assert (
        str(info.value) == "EVENT frame carries an invalid event: kind must be an integer, got str"
    )
    assert info.value.subscription_id == "sub"


def test_frame_size_limit() -> None:
    frame = json.dumps(["NOTICE", "x" * MAX_FRAME_BYTES])
    with pytest.raises(RelayProtocolError, match=f"^frame is {len(frame)} bytes, limit is 262144$"):
        parse_relay_message(frame)


def test_non_utf8_and_deep_nesting() -> None:
    with pytest.raises(RelayProtocolError, match=r"^frame is not valid UTF-8: "):
        parse_relay_message(b'["NOTICE","\xff"]')
    with pytest.raises(RelayProtocolError, match=r"^frame is not valid JSON"):
        parse_relay_message("[" * 100_000 + "]" * 100_000)


def test_client_builders(event: NostrEvent) -> None:
    assert json.loads(event_message(event)) == ["EVENT", event.to_dict()]
    assert req_message("s", {"kinds": [1311]}, {"#a": ["x"]}) == (
        '["REQ","s",{"kinds":[1311]},{"#a":["x"]}]'
    )
    assert close_message("s") == '["CLOSE","s"]'
    with pytest.raises(ValueError, match=r"1..64"):
        req_message("x" * 65, {})
    with pytest.raises(ValueError, match="at least one filter"):
        req_message("s")
    with pytest.raises(ValueError, match="kind 22242"):
        auth_message(event)


def test_auth_event(alice: PrivateKeySigner) -> None:
    """NIP-42: kind 22242 with relay and challenge tags, empty content."""
    ev = alice.sign_event(build_auth_event("wss://relay.example/", "c1", created_at=5))
    assert ev.kind == 22242
    assert ev.tags == (("relay", "wss://relay.example/"), ("challenge", "c1"))
    assert ev.content == ""
    assert json.loads(auth_message(ev)) == ["AUTH", ev.to_dict()]
    assert ev.verify()


def test_filter_matches(event: NostrEvent) -> None:
    a = "30311:" + "cd" * 32 + ":s1"
    assert filter_matches({"kinds": [1311], "#a": [a]}, event)
    assert not filter_matches({"kinds": [1311], "#a": [a + "x"]}, event)
    assert not filter_matches({"kinds": [1]}, event)
    assert filter_matches({"authors": [event.pubkey], "since": 100, "until": 100}, event)
    assert not filter_matches({"since": 101}, event)
    assert not filter_matches({"ids": [EID]}, event)
    assert filter_matches({"limit": 5}, event)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_hypothesis_arbitrary_input(data: str | bytes) -> None:
    """Arbitrary text/bytes never raise anything but RelayProtocolError."""
    try:
        parse_relay_message(data)
    except RelayProtocolError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=8),
    max_leaves=20,
)


@given(
    st.sampled_from(["EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "AUTH", "X"]),
    st.lists(_json, max_size=4),
)
def test_hypothesis_structured_input(kind: str, rest: list[object]) -> None:
    try:
        parse_relay_message(json.dumps([kind, *rest]))
    except RelayProtocolError:
        pass
