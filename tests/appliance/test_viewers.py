"""Viewer sessions: HMAC tokens, activity window, peak and total."""

from __future__ import annotations

from appliance.viewers import ACTIVE_SECONDS, MAX_SESSIONS, ViewerCounter, ViewerTokens


def test_tokens_are_bound_to_their_stream() -> None:
    tokens = ViewerTokens(b"k" * 32)
    t = tokens.mint("abc123")
    assert tokens.check("abc123", t)
    assert not tokens.check("other1", t)
    assert not tokens.check("abc123", t[:-1] + ("A" if t[-1] != "A" else "B"))
    for junk in ("", ".", "a.b.c", "x" * 100, "made.up"):
        assert not tokens.check("abc123", junk)


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


def test_memory_is_capped() -> None:
    c = ViewerCounter(clock=lambda: 0.0)
    for i in range(MAX_SESSIONS + 10):
        c.touch(str(i))
    assert c.current() == MAX_SESSIONS
    assert c.total == MAX_SESSIONS + 10
