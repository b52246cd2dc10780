"""RTMP timestamps → a monotonic 90 kHz timeline (docs/threat-model.md §media)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from media.timeline import MAX_JUMP_MS, REBASE_GAP_TICKS, Timeline


def test_starts_at_zero_and_scales_to_90khz() -> None:
    t = Timeline()
    assert [t.map(ms) for ms in (1000, 1033, 1066)] == [0, 33 * 90, 66 * 90]


def test_32bit_wraparound_is_unwrapped() -> None:
    """RTMP §5.3.1.2.1: timestamps wrap at 2^32 ms (~49.7 days)."""
    t = Timeline()
    a = t.map(0xFFFFFFF0)
    b = t.map(0x00000010)  # 32 ms later, after the wrap
    assert b - a == 32 * 90


def test_small_backward_step_between_tracks_is_kept() -> None:
    """Audio may be stamped a little before the last video frame; that is not a jump."""
    t = Timeline()
    v = t.map(5000)
    a = t.map(4990)
    assert a == v - 10 * 90


def test_big_jump_rebases_after_high_water() -> None:
    t = Timeline()
    t.map(0)
    last = t.map(40)
    jumped = t.map(40 + MAX_JUMP_MS + 1)
    assert jumped == last + REBASE_GAP_TICKS
    assert t.rebases == 1


def test_new_session_continues_after_the_previous_one() -> None:
    """A reconnect restarts OBS's clock at 0; the timeline carries on."""
    t = Timeline()
    for ms in range(0, 5000, 40):
        last = t.map(ms)
    t.new_session()
    assert t.map(0) == last + REBASE_GAP_TICKS
    assert t.map(40) == last + REBASE_GAP_TICKS + 40 * 90


@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=200),
       st.integers(min_value=0, max_value=199))
def test_output_never_goes_below_previous_high_water_after_a_rebase(
        stamps: list[int], session_break: int) -> None:
    """Whatever the input, a rebase never lands at or below what was already handed out."""
    t = Timeline()
    for i, ms in enumerate(stamps):
        if i == session_break:
            before = t.high_water
            t.new_session()
            assert t.map(ms) > before
        else:
            t.map(ms)
    assert t.high_water >= 0


def test_session_rebaser_continues_after_the_floor_and_rebases_jumps() -> None:
    from media.timeline import REBASE_GAP_TICKS, SessionRebaser
    r = SessionRebaser()
    r.new_session(-1)
    assert r.map(5_000_000) == 0 and r.map(5_090_000) == 90_000
    r.new_session(200_000)  # another ingest fed the stream up to 200_000
    assert r.map(7) == 200_000 + REBASE_GAP_TICKS
    assert r.map(7 + 9000) == 200_000 + REBASE_GAP_TICKS + 9000
    high = 200_000 + REBASE_GAP_TICKS + 9000
    assert r.map(10**12) == high + REBASE_GAP_TICKS  # a clock jump: continue, do not leap
