"""The admin event stream's one encode/decode (appliance.api.schema), as properties.

Every event type round-trips through the SSE wire, however the bytes are split; decoding
anything else raises only SchemaError; unknown kinds decode to None (the TUI skips them).
New event types are covered by listing them in EVENT_TYPES: the strategies are built from
the dataclass annotations.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.schema import (
    EVENT_TYPES,
    MAX_EVENT_CHARS,
    AdminEvent,
    AdminStream,
    SchemaError,
    SseFrame,
    SseParser,
    Status,
    StreamChange,
    StreamEvent,
    decode_event,
    encode_event,
)
from tui.testing import make_stream


def strategy_for(typ: Any) -> st.SearchStrategy[Any]:
    """Values of an annotation used in the schema (JSON-representable, finite floats)."""
    origin = typing.get_origin(typ)
    if origin is types.UnionType or origin is typing.Union:
        return st.one_of(*(strategy_for(a) for a in typing.get_args(typ)))
    if origin is list:
        return st.lists(strategy_for(typing.get_args(typ)[0]), max_size=3)
    if typ is type(None):
        return st.none()
    if isinstance(typ, type) and is_dataclass(typ):
        hints = typing.get_type_hints(typ)
        return st.builds(typ, **{f.name: strategy_for(hints[f.name]) for f in fields(typ)})
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        return st.sampled_from(typ)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(), int: st.integers(), str: st.text(),
        float: st.floats(allow_nan=False, allow_infinity=False),
    }
    return simple[typ]


any_event = st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda c: c.KIND)).flatmap(
    strategy_for)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def test_every_event_type_is_registered_once() -> None:
    assert set(typing.get_args(AdminEvent)) == set(EVENT_TYPES.values())
    assert all(kind == cls.KIND for kind, cls in EVENT_TYPES.items())


@settings(max_examples=300)
@given(event=any_event, cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_decode_of_encode_is_identity_however_the_bytes_arrive(
        event: AdminEvent, cuts: list[int]) -> None:
    wire = b": heartbeat\n\n" + encode_event(event) + b": heartbeat\n\n"
    points = sorted({c % (len(wire) + 1) for c in cuts})
    parser = SseParser()
    frames: list[SseFrame] = []
    for start, end in zip([0, *points], [*points, len(wire)], strict=True):
        frames += parser.feed(wire[start:end])
    assert len(frames) == 1
    assert decode_event(frames[0]) == event


@settings(max_examples=300)
@given(kind=st.sampled_from(sorted(EVENT_TYPES)), data=json_values)
def test_arbitrary_json_raises_only_schema_error(kind: str, data: object) -> None:
    try:
        decoded = decode_event(SseFrame(kind, json.dumps(data)))
    except SchemaError:
        return
    assert isinstance(decoded, EVENT_TYPES[kind])


@settings(max_examples=300)
@given(event=any_event, key_index=st.integers(min_value=0), value=json_values)
def test_one_wrong_field_raises_only_schema_error(event: AdminEvent, key_index: int,
                                                  value: object) -> None:
    """Valid events with one field replaced by arbitrary JSON: decoded or SchemaError."""
    data = event.to_dict()
    key = sorted(data)[key_index % len(data)]
    data[key] = value
    try:
        decode_event(SseFrame(event.KIND, json.dumps(data)))
    except SchemaError:
        pass


@given(kind=st.sampled_from(sorted(EVENT_TYPES)), text=st.text())
def test_non_json_data_raises_schema_error(kind: str, text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        with pytest.raises(SchemaError):
            decode_event(SseFrame(kind, text))


@given(kind=st.text().filter(lambda k: k not in EVENT_TYPES), data=json_values)
def test_unknown_kinds_decode_to_none(kind: str, data: object) -> None:
    """What a newer appliance adds is not an error here: the TUI skips it."""
    assert decode_event(SseFrame(kind, json.dumps(data))) is None


@given(chunks=st.lists(st.binary(max_size=200), max_size=20))
def test_parser_takes_any_bytes(chunks: list[bytes]) -> None:
    parser = SseParser()
    for chunk in chunks:
        for frame in parser.feed(chunk):
            assert "\n\n" not in frame.data


def test_truncated_hostile_and_oversized_input() -> None:
    event = StreamEvent("abc", StreamChange.LIVE, at=1.0)
    wire = encode_event(event)
    parser = SseParser()
    assert parser.feed(wire[:-1]) == []  # truncated: nothing yet
    assert [decode_event(f) for f in parser.feed(wire[-1:])] == [event]
    with pytest.raises(SchemaError, match="reason: unknown value 'exploded'"):
        decode_event(SseFrame("stream", '{"stream_id":"a","reason":"exploded","at":1}'))
    with pytest.raises(SchemaError, match="missing field 'at'"):
        decode_event(SseFrame("stream", '{"stream_id":"a","reason":"live"}'))
    with pytest.raises(SchemaError, match="expected int, got boolean"):
        decode_event(SseFrame("viewers", '{"stream_id":"a","current":true,"peak":1,'
                                         '"total":1,"at":1}'))
    with pytest.raises(SchemaError, match="nested too deeply"):
        decode_event(SseFrame("stream", "[" * 100_000 + "]" * 100_000))
    with pytest.raises(SchemaError, match="out of range"):
        decode_event(SseFrame("viewers", '{"stream_id":"a","current":1,"peak":1,"total":1,'
                                         f'"at":{10**400}}}'))
    flood = SseParser()
    with pytest.raises(SchemaError, match="longer than"):
        for _ in range(MAX_EVENT_CHARS // 4096 + 2):
            flood.feed(b"data: " + b"x" * 4096)


def test_rest_dtos_are_checked_too() -> None:
    """from_dict is the same checked decoder for the REST answers (CLI, TUI)."""
    data = make_stream(1).to_dict()
    assert AdminStream.from_dict(data) == make_stream(1)
    data["ingest"]["fps"] = "fast"
    with pytest.raises(SchemaError, match=r"AdminStream\.ingest\.fps: expected float"):
        AdminStream.from_dict(data)
    data["ingest"] = {"fps": 30.0}
    with pytest.raises(SchemaError, match=r"AdminStream\.ingest: missing field 'connection_id'"):
        AdminStream.from_dict(data)
    with pytest.raises(SchemaError, match="expected an object, got array"):
        Status.from_dict([])
