"""No path from a URL reaches the filesystem unchecked (docs/threat-model.md §paths)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.delivery.paths import (
    InvalidId,
    check_id,
    recording_dir,
    thumbnail_path,
    vod_object_path,
)

HOSTILE = ["..", ".", "", "a/b", "../etc", "%2e%2e", "..%2f", "a\0b", "a\\b", "/etc/passwd",
           "x" * 65, "seg-1.m4s/../../x", "ä", " ", "a b", "a\nb", "~root"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId):
        recording_dir(Path("/data"), bad)
    with pytest.raises(InvalidId):
        thumbnail_path(Path("/data"), bad)


@pytest.mark.parametrize("bad", [*HOSTILE, "seg-01.m4s", "init-0.m4s", "seg-1.mp4",
                                 "index.jsonl", "meta.json", "download.mp4", "seg-1.m4s.tmp",
                                 "seg-9999999999.m4s"])
def test_hostile_object_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId):
        vod_object_path(Path("/data"), "abc", bad)


def test_good_paths_stay_under_the_root() -> None:
    assert recording_dir(Path("/d"), "abc_1-2") == Path("/d/recordings/abc_1-2")
    assert thumbnail_path(Path("/d"), "abc") == Path("/d/thumbnails/abc.jpg")
    assert vod_object_path(Path("/d"), "abc", "seg-12.m4s") == Path("/d/recordings/abc/seg-12.m4s")


@given(st.text(max_size=80))
def test_any_text_is_valid_or_invalid_id_only(text: str) -> None:
    try:
        path = recording_dir(Path("/d"), text)
    except InvalidId:
        return
    assert path.parent == Path("/d/recordings") and check_id(text) == path.name
