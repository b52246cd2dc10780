"""LL-HLS delivery directives (rfc8216bis §6.2.5): parsing raises only HTTP 400, never else."""

from __future__ import annotations

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from appliance.api.hls import advance_part_limit, client_address, parse_blocking
from media.hls import HlsMuxer
from tests.media.hls.media_factory import make_stream


@pytest.fixture(scope="module")
def muxer() -> HlsMuxer:
    s = make_stream(5.0)
    m = HlsMuxer(segment_target=2.0, part_target=0.2)
    m.set_config(s.video, s.audio)
    for u in s.units:
        m.push(u)
    assert m.last_msn is not None
    return m


PARAM = st.sampled_from(["_HLS_msn", "_HLS_part", "_HLS_skip", "x"])
VALUE = st.one_of(st.text(max_size=40), st.integers(-10**30, 10**30).map(str),
                  st.sampled_from(["YES", "v2", "0", "00", "1e3", " 1", "\u0661"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(PARAM, VALUE), max_size=6))
def test_parsing_raises_only_bad_request(muxer: HlsMuxer, pairs: list[tuple[str, str]]) -> None:
    query = MultiDict(pairs)
    try:
        msn, part, _skip = parse_blocking(query, muxer)
    except web.HTTPBadRequest:
        return
    assert muxer.last_msn is not None
    if msn is not None:
        assert 0 <= msn <= muxer.last_msn + 2
    if part is not None:
        assert msn is not None and 0 <= part


@pytest.mark.parametrize("query", [
    {"_HLS_msn": "9" * 5000}, {"_HLS_msn": "99999999999999999999"}, {"_HLS_part": "1"},
    {"_HLS_msn": "0", "_HLS_part": "9" * 400}, {"_HLS_skip": "YES" * 1000},
    {"_HLS_msn": "0x10"}, {"_HLS_msn": "+1"}, {"_HLS_msn": "1.0"},
])
def test_hostile_and_huge_params_get_400(muxer: HlsMuxer, query: dict[str, str]) -> None:
    with pytest.raises(web.HTTPBadRequest):
        parse_blocking(MultiDict(query), muxer)


def test_far_future_msn_is_refused(muxer: HlsMuxer) -> None:
    """§6.2.5.2: an _HLS_msn more than two past the last segment → 400."""
    assert muxer.last_msn is not None
    parse_blocking(MultiDict({"_HLS_msn": str(muxer.last_msn + 2)}), muxer)
    with pytest.raises(web.HTTPBadRequest):
        parse_blocking(MultiDict({"_HLS_msn": str(muxer.last_msn + 3)}), muxer)
    assert advance_part_limit(0.2) == 15


class _Req:
    def __init__(self, remote: str, xff: str | None) -> None:
        self.remote = remote
        self.headers = {} if xff is None else {"X-Forwarded-For": xff}


@pytest.mark.parametrize(("remote", "xff", "expected"), [
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
    ("127.0.0.1", "198.51.100.7", "198.51.100.7"),  # local proxy: its view of the client
    ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # spoofed prefix ignored
    ("::1", "2001:db8::1", "2001:db8::1"),
    ("127.0.0.1", "not-an-ip", "127.0.0.1"),
    ("127.0.0.1", None, "127.0.0.1"),
])
def test_client_address(remote: str, xff: str | None, expected: str) -> None:
    assert client_address(_Req(remote, xff)) == expected  # type: ignore[arg-type]
