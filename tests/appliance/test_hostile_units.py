"""Unit tests for the hostile-input defences: key blocks, the sanitiser, chat bounds, the
admin socket's peer-credential policy (issue 10; issue 9 §3)."""

from __future__ import annotations

import json
import logging
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.peercred import PeerPolicy
from appliance.api.schema import safe_text
from appliance.ingest import AuthThrottle
from appliance.logsafe import SafeLogFilter
from appliance.nostr.chat import MAX_JSON_DEPTH, RateLimiter, json_nesting_exceeds

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


# ---- issue 9 §3: blocks stop wrong guesses only ---------------------------------------------


def test_block_after_limit_and_attempts_while_blocked_do_not_extend_it() -> None:
    throttle = AuthThrottle(limit=3, window=60, block=100)
    assert not throttle.failure("10.0.0.1", now=0)
    assert not throttle.failure("10.0.0.1", now=1)
    assert throttle.failure("10.0.0.1", now=2)
    assert throttle.blocked("10.0.0.1", now=3)
    for t in range(3, 90):
        assert not throttle.failure("10.0.0.1", now=t)  # counted, never re-blocking
    (addr, block), = throttle.blocks(now=90)
    assert addr == "10.0.0.1" and block.until == 102 and block.attempts == 87
    assert not throttle.blocked("10.0.0.1", now=102.5)


def test_lift_and_success_forget_failures() -> None:
    throttle = AuthThrottle(limit=2, window=60, block=100)
    throttle.failure("a", now=0)
    throttle.success("a")
    assert not throttle.failure("a", now=1)  # the earlier failure was forgotten
    assert throttle.failure("a", now=2)
    assert throttle.lift("a") and not throttle.blocked("a", now=3)
    assert not throttle.lift("a")
    assert not throttle.failure("a", now=4)  # a lifted block starts from zero


def test_other_addresses_are_unaffected() -> None:
    throttle = AuthThrottle(limit=1, window=60, block=100)
    assert throttle.failure("a", now=0)
    assert not throttle.blocked("b", now=1)


# ---- one sanitiser ---------------------------------------------------------------------------


def test_safe_text_escapes_terminal_controls() -> None:
    text = safe_text("a\x1b[2Jb\r\nc\u202ed\u2066e\x00")
    assert text == "a\\x1b[2Jb\\x0d\\x0ac\\u202ed\\u2066e\\x00"


def test_safe_text_caps_length() -> None:
    assert len(safe_text("x" * 10_000, 100)) == 100
    assert safe_text("x" * 10_000, 100).endswith("…")


@settings(max_examples=300)
@given(st.text(max_size=300), st.integers(1, 400))
def test_safe_text_output_is_inert(value: str, limit: int) -> None:
    out = safe_text(value, limit)
    assert not UNSAFE.search(out)
    assert len(out) <= limit


def test_log_filter_makes_each_record_one_inert_line() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1,
                               "refused %s from %s (%d)", ("\x1b[2Jkey\r\nFAKE", "1.2.3.4", 3),
                               None)
    assert SafeLogFilter().filter(record)
    message = record.getMessage()
    assert message == "refused \\x1b[2Jkey\\x0d\\x0aFAKE from 1.2.3.4 (3)"


def test_log_filter_survives_a_bad_format_string() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %s", ("x",), None)
    assert SafeLogFilter().filter(record)
    assert "\n" not in record.getMessage()


# ---- chat: JSON bounds and honest limit texts ------------------------------------------------


def test_deep_nesting_detected_before_parsing() -> None:
    assert json_nesting_exceeds("[" * 3000 + "]" * 3000)
    assert json_nesting_exceeds('{"a":' * 20 + "1" + "}" * 20)
    ok = json.dumps({"type": "event", "event": {"tags": [["a", "[[[[[[[[[[[[[[[[[[[[[[["]]}})
    assert not json_nesting_exceeds(ok)
    assert not json_nesting_exceeds('"\\"[[[[[[[[[[[[[[[[[[[[[["')


@settings(max_examples=500)
@given(st.text(alphabet='[]{}"\\:,ab1 ', max_size=400))
def test_nesting_check_never_raises_and_agrees_with_the_parser(text: str) -> None:
    deep = json_nesting_exceeds(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    assert deep == (_depth(value) > MAX_JSON_DEPTH)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def test_rate_limit_text_states_the_limit() -> None:
    limiter = RateLimiter(capacity=10, period=3.0)
    assert "at most 10 messages every 3 s" in limiter.describe()
    assert "at most 2 messages every 3 s" in RateLimiter().describe()


# ---- admin socket peer credentials -----------------------------------------------------------


def test_peer_policy() -> None:
    private = PeerPolicy(uid=1000, gid=None)
    assert private.allows(1000, 1000, frozenset())
    assert private.allows(0, 0, frozenset())
    assert not private.allows(1001, 1000, frozenset({1000}))
    group = PeerPolicy(uid=1000, gid=500)
    assert group.allows(1001, 500, frozenset())
    assert group.allows(1001, 100, frozenset({500}))
    assert not group.allows(1001, 100, frozenset({501}))
