"""Viewer sessions: server-side keys, activity window, per-address cap, peak and total."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.viewers import (
    ACTIVE_SECONDS,
    MAX_SESSIONS,
    SESSIONS_PER_ADDRESS,
    ViewerCounter,
    ViewerTokens,
)


def test_keys_are_opaque_and_stable() -> None:
    tokens = ViewerTokens(b"k" * 32)
    a = tokens.session_key("203.0.113.7", "Mozilla/5.0", None)
    assert a == tokens.session_key("203.0.113.7", "Mozilla/5.0", None)
    assert "203.0.113.7" not in a and "203" not in tokens.address_key("203.0.113.7")
    assert a != tokens.session_key("203.0.113.7", "VLC/3.0", None)
    assert a != ViewerTokens(b"j" * 32).session_key("203.0.113.7", "Mozilla/5.0", None)
    p = tokens.session_key("203.0.113.7", "Mozilla/5.0", "A" * 20)
    assert p.startswith("p:") and p == tokens.session_key("198.51.100.1", "x", "A" * 20)
    for bad in ("", "short", "x" * 65, "has space in it!!", "../../etc/passwd////"):
        assert tokens.session_key("a", "ua", bad) == tokens.session_key("a", "ua", None)


@given(st.text(max_size=300), st.text(max_size=600), st.one_of(st.none(), st.text(max_size=80)))
def test_key_derivation_never_raises(address: str, ua: str, player: str | None) -> None:
    tokens = ViewerTokens(b"k" * 32)
    assert tokens.session_key(address, ua, player)
    assert tokens.address_key(address)


def test_counting_window_peak_and_total() -> None:
    now = [1000.0]
    c = ViewerCounter(clock=lambda: now[0])
    c.touch("a")
    c.touch("b")
    c.touch("a")
    assert c.current() == 2 and c.total == 2 and c.peak == 2
    now[0] += ACTIVE_SECONDS - 1
    c.touch("b")
    now[0] += 2
    assert c.current() == 1  # "a" went quiet
    assert c.peak == 2 and c.total == 2


def test_one_address_cannot_inflate_the_count() -> None:
    """Issue 10 item 9: 4,000 sessions from one address count as the cap, not 4,000."""
    now = [0.0]
    c = ViewerCounter(clock=lambda: now[0])
    for i in range(4000):
        c.seen(f"s{i}", "addr-1")
    assert c.current() == SESSIONS_PER_ADDRESS == c.peak == c.total
    assert c.refused == 4000 - SESSIONS_PER_ADDRESS
    assert c.seen("other", "addr-2")  # other addresses are unaffected
    assert c.seen("s0", "addr-1")  # a counted session keeps counting
    now[0] += ACTIVE_SECONDS + 1  # the address's sessions expire: room again
    assert c.seen("fresh", "addr-1") and c.current() == 1


def test_memory_is_capped() -> None:
    c = ViewerCounter(clock=lambda: 0.0)
    for i in range(MAX_SESSIONS + 10):
        c.touch(str(i))
    assert c.current() == MAX_SESSIONS
    assert c.total == MAX_SESSIONS + 10
