"""Restream target URLs: only rtmp/rtmps, the key split off and never in errors or repr
(docs/threat-model.md §restream)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtmp.url import RtmpUrl, RtmpUrlError, parse_rtmp_url


def test_splits_server_app_and_key() -> None:
    u = parse_rtmp_url("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl")
    assert u == RtmpUrl("rtmp", "a.rtmp.youtube.com", 1935, "live2", "abcd-efgh-ijkl")
    assert u.tc_url == "rtmp://a.rtmp.youtube.com:1935/live2"
    assert "abcd" not in u.redacted() and "abcd" not in repr(u) and "abcd" not in str(u)
    t = parse_rtmp_url("RTMPS://Live-API-S.facebook.com/rtmp/FB-123?s_bl=1&a=b")
    assert (t.scheme, t.host, t.port, t.app, t.stream_name) == (
        "rtmps", "live-api-s.facebook.com", 443, "rtmp", "FB-123?s_bl=1&a=b")
    assert t.tls


def test_a_separate_key_makes_the_whole_path_the_app() -> None:
    u = parse_rtmp_url("rtmp://[::1]:1936/app/instance", stream_name="k")
    assert (u.host, u.port, u.app, u.stream_name) == ("::1", 1936, "app/instance", "k")
    assert u.server_url == "rtmp://[::1]:1936/app/instance"
    assert parse_rtmp_url("rtmp://h/app").stream_name == ""  # the caller asks for the key


@pytest.mark.parametrize("url", [
    "http://example.com/live/key", "file:///etc/passwd", "gopher://h/x", "srt://h:9000",
    "rtmp://user:pw@h/app/key", "rtmp:///app/key", "rtmp://h", "rtmp://h/", "rtmp://h:0/a/k",
    "rtmp://h:99999/a/k", "rtmp://h/a/k#frag", "rtmp://h/a/k y", "rtmp://h/a/k\x00",
    "rtmp://bad_host!/a/k", "rtmp://-h/a/k", "rtmp://h/a?x=1", "rtmp://" + "h" * 3000,
])
def test_rejects(url: str) -> None:
    with pytest.raises(RtmpUrlError):
        parse_rtmp_url(url)


def test_errors_never_quote_the_key() -> None:
    with pytest.raises(RtmpUrlError) as info:
        parse_rtmp_url("rtmp://h/app/SECRET\x01")
    assert "SECRET" not in str(info.value)
    with pytest.raises(RtmpUrlError):
        parse_rtmp_url("rtmp://h/app").with_stream_name("")


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_url_errors(text: str) -> None:
    for candidate in (text, f"rtmp://{text}", f"rtmps://h/{text}"):
        try:
            parse_rtmp_url(candidate)
        except RtmpUrlError:
            pass
