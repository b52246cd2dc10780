"""The sans-IO relay session: frames in, typed events and frames out (no sockets, no loop)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from relay_client.event import UnsignedEvent
from relay_client.messages import build_auth_event
from relay_client.session import (
    AuthRequested,
    CloseRequested,
    DeliveredIds,
    EndOfStoredEvents,
    EventReceived,
    EventRejected,
    PublishAnswered,
    RelaySession,
    SessionLimits,
    Subscription,
)
from relay_client.signing import PrivateKeySigner

NOW = 1_700_000_000.0
ALICE = PrivateKeySigner(bytes.fromhex("03".rjust(64, "0")))


def _session(**kw: object) -> RelaySession:
    s = RelaySession("wss://r.example", clock=lambda: NOW, **kw)  # type: ignore[arg-type]
    return s


def _note(content: str = "hi", kind: int = 1, created_at: int = int(NOW)) -> dict[str, object]:
    return ALICE.sign_event(
        UnsignedEvent(kind=kind, content=content, tags=(), created_at=created_at)).to_dict()


def test_subscriptions_and_pending_events_are_sent_on_connect_in_order() -> None:
    s = _session()
    ev = ALICE.sign_event(UnsignedEvent(kind=1, content="x", tags=(), created_at=1))
    s.subscribe(Subscription("a", ({"kinds": [1]},)))
    s.publish(ev)
    assert s.frames_to_send() == []  # not connected: nothing goes out
    s.connection_made()
    frames = [json.loads(f) for f in s.frames_to_send()]
    assert [f[0] for f in frames] == ["REQ", "EVENT"]
    assert s.frames_to_send() == []  # sent once per connection
    s.connection_lost()
    s.connection_made()
    assert [json.loads(f)[0] for f in s.frames_to_send()] == ["REQ", "EVENT"]


def test_ok_answers_a_publish_once_and_counts() -> None:
    s = _session()
    s.connection_made()
    ev = ALICE.sign_event(UnsignedEvent(kind=1, content="x", tags=(), created_at=1))
    s.publish(ev)
    s.frames_to_send()
    s.receive_frame(json.dumps(["OK", ev.id, True, ""]))
    assert s.events() == [PublishAnswered(ev.id, True, "")]
    assert s.counters.published == 1 and s.counters.last_ok_at == NOW
    s.receive_frame(json.dumps(["OK", ev.id, True, ""]))  # a second OK is unexpected
    assert s.events() == [] and s.counters.unexpected_oks == 1


def test_event_checks_and_rejection_reasons_come_from_exception_classes() -> None:
    s = _session()
    s.subscribe(Subscription("s", ({"kinds": [1]},)))
    s.connection_made()
    good = _note("good")
    forged = {**_note("forged"), "sig": good["sig"]}
    rehashed = {**good, "content": "changed"}
    for ev in (forged, rehashed, _note(kind=7), _note(created_at=int(NOW) + 3600), good, good):
        s.receive_frame(json.dumps(["EVENT", "s", ev]))
    s.receive_frame(json.dumps(["EOSE", "s"]))
    events = s.events()
    rejected = [e.reason for e in events if isinstance(e, EventRejected)]
    assert rejected == ["bad-signature", "bad-id", "filter-mismatch", "created-at-future"]
    received = [e for e in events if isinstance(e, EventReceived)]
    assert [e.event.id for e in received] == [good["id"]]
    assert events[-1] == EndOfStoredEvents("s")
    assert s.delivered.duplicates == 1


def test_dedup_is_shared_between_sessions() -> None:
    shared = DeliveredIds()
    a, b = _session(delivered=shared), _session(delivered=shared)
    for s in (a, b):
        s.subscribe(Subscription("s", ({"kinds": [1]},)))
        s.connection_made()
        s.receive_frame(json.dumps(["EVENT", "s", _note("same")]))
    assert sum(isinstance(e, EventReceived) for e in a.events() + b.events()) == 1


def test_misbehaviour_budget_requests_a_close_once() -> None:
    s = _session(limits=SessionLimits(misbehaviour_budget=2))
    s.connection_made()
    for _ in range(10):
        s.receive_frame("not json")
    closes = [e for e in s.events() if isinstance(e, CloseRequested)]
    assert len(closes) == 1 and closes[0].code == 1008
    assert s.counters.malformed_frames == 3  # frames after the close request are ignored


def test_nip42_auth_required_holds_then_retries_behind_auth() -> None:
    s = _session(can_authenticate=True)
    s.connection_made()
    ev = ALICE.sign_event(UnsignedEvent(kind=1, content="x", tags=(), created_at=1))
    s.publish(ev)
    s.frames_to_send()
    s.receive_frame(json.dumps(["AUTH", "challenge-1"]))
    s.receive_frame(json.dumps(["OK", ev.id, False, "auth-required: sign in"]))
    assert s.events() == [AuthRequested("challenge-1")]
    assert s.frames_to_send() == []  # held until AUTH goes out
    s.authenticate(ALICE.sign_event(build_auth_event(s.url, "challenge-1")))
    assert [json.loads(f)[0] for f in s.frames_to_send()] == ["AUTH", "EVENT"]


def test_cancel_resolves_as_rejected() -> None:
    s = _session()
    ev = ALICE.sign_event(UnsignedEvent(kind=1, content="x", tags=(), created_at=1))
    s.publish(ev)
    s.cancel_publish(ev.id, "timeout: no OK")
    assert s.events() == [PublishAnswered(ev.id, False, "timeout: no OK")]
    assert s.pending == 0 and s.counters.rejected == 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.builds(lambda t, rest: json.dumps([t, *rest]),
              st.sampled_from(["EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "AUTH", "X"]),
              st.lists(_json_values, max_size=4)),
))
def test_receive_frame_never_raises(frame: str | bytes) -> None:
    """Whatever a relay sends, the session records it and never raises."""
    s = _session(can_authenticate=True)
    s.subscribe(Subscription("s", ({"kinds": [1]},)))
    s.connection_made()
    s.receive_frame(frame)
    s.events()
    s.frames_to_send()
