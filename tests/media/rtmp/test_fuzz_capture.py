"""Hypothesis fuzz of the RTMP session seeded from a real ffmpeg capture (issue 10).

≥ 10,000 cases per CI run, kept cheap (one capture is ~20 KB and parses in about a
millisecond). ``scripts/fuzz_rtmp.py`` runs the same property for hours.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.rtmp.session import SessionState
from tests.media.rtmp.capture_fuzz import CAPTURE, check_session, mutate

EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "10000"))


def test_capture_is_a_complete_publish() -> None:
    """The seed itself parses cleanly: publish accepted, media delivered, clean unpublish."""
    session = check_session(CAPTURE, [], accept=True)
    assert session.error is None
    assert session.state is SessionState.CLOSED
    assert session.bytes_received == len(CAPTURE)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**32 - 1), splits=st.lists(st.integers(0, 1 << 16), max_size=3),
       accept=st.booleans())
def test_mutated_captures_never_break_the_session(seed: int, splits: list[int],
                                                  accept: bool) -> None:
    """Spliced, flipped, duplicated, deleted and truncated versions of a real publish, fed in
    random pieces with either decision: nothing raises out of the session, no internal error,
    bounded buffering, no media before acceptance, parsers raise only their own errors."""
    check_session(mutate(CAPTURE, random.Random(seed)), splits, accept)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, len(CAPTURE)))
def test_garbage_inserted_into_a_capture(garbage: bytes, pos: int) -> None:
    check_session(CAPTURE[:pos] + garbage + CAPTURE[pos:], [pos], True)
