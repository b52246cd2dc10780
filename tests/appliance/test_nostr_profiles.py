"""Kind 0 parsing (hostile input raises only ProfileError), the bounded name cache with
newest-wins, and what Hearth says about itself (kind 0 / 10002 / 31990)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config import Config, HttpConfig, NostrConfig
from appliance.nostr.profiles import ProfileError, Profiles, parse_profile
from appliance.nostr.service_identity import identity_events
from appliance.tasks import BackgroundTasks
from relay_client import PrivateKeySigner, RelayPool, UnsignedEvent

ALICE = PrivateKeySigner(bytes.fromhex("03".rjust(64, "0")))


def test_parse_profile_prefers_display_name_and_sanitises() -> None:
    meta = parse_profile(json.dumps({"name": "ada", "display_name": "Ada\u202e Lovelace",
                                     "nip05": "ada@example.org"}))
    assert meta.name == "Ada Lovelace" and meta.nip05 == "ada@example.org"
    assert parse_profile('{"name":"bob"}').name == "bob"
    for bad in ("", "[]", "null", '{"name": 5}', '{"name": "\u200b"}', "{" * 50_000,
                json.dumps({"name": "x" * 20_000})):
        with pytest.raises(ProfileError):
            parse_profile(bad)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["name", "display_name", "displayName", "nip05", "about"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=80), st.lists(st.text(), max_size=3)),
    max_size=4))))
def test_parse_profile_raises_only_its_error(content: str) -> None:
    try:
        meta = parse_profile(content)
    except ProfileError:
        return
    assert 0 < len(meta.name) <= 64


class _Store:
    async def write(self, fn: Any) -> Any:
        return None

    async def read(self, fn: Any) -> Any:
        return {}


def _kind0(name: str, created_at: int, signer: PrivateKeySigner = ALICE) -> Any:
    return signer.sign_event(UnsignedEvent(kind=0, content=json.dumps({"name": name}),
                                           tags=(), created_at=created_at))


async def test_cache_is_bounded_newest_wins_and_refreshes() -> None:
    now = [1000.0]
    learned: list[tuple[str, str]] = []
    tasks = BackgroundTasks("test")
    profiles = Profiles(_Store(), RelayPool(), ("wss://r",), tasks,  # type: ignore[arg-type]
                        on_name=lambda pk, n: learned.append((pk, n)), clock=lambda: now[0],
                        cache_size=3)
    profiles.on_profile(_kind0("new", 20), "r")
    profiles.on_profile(_kind0("old", 10), "r")  # older version: ignored
    assert profiles.name(ALICE.public_key) == "new"
    assert learned == [(ALICE.public_key, "new")]
    for _ in range(5):
        profiles.on_profile(_kind0("x", 1, PrivateKeySigner.generate()), "r")
    assert profiles.name(ALICE.public_key) is None  # evicted: the cache holds 3
    profiles.on_profile(_kind0("again", 30), "r")
    profiles.note_author(ALICE.public_key)
    assert not profiles._unknown  # fresh
    now[0] += 3601
    profiles.note_author(ALICE.public_key)
    assert profiles._unknown == {ALICE.public_key}  # asked again after an hour
    await tasks.close()


def test_identity_events_name_the_public_url_and_relays() -> None:
    cfg = Config(http=HttpConfig(public_url="https://live.example.org"),
                 nostr=NostrConfig(relays=("wss://a", "wss://b"), profile_name="My Hearth"))
    events = {e.kind: e for e in identity_events(cfg, ALICE.public_key)}
    profile = json.loads(events[0].content)
    assert profile == {"name": "My Hearth", "about": "Live streams at https://live.example.org",
                       "website": "https://live.example.org"}
    assert events[10002].tags == (("r", "wss://a"), ("r", "wss://b"))
    assert ("k", "30311") in events[31990].tags
    assert ("web", "https://live.example.org/nostr/<bech32>", "naddr") in events[31990].tags
    assert events[31990].supersede_key == f"31990:{ALICE.public_key}:hearth-watch"
