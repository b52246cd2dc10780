"""NIP-05 verification against a local HTTP server (no network): parse, match, no redirects,
bounded bodies, cached results; hypothesis: the parsers raise only Nip05Error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.nostr.nip05 import (
    Nip05Error,
    Nip05Verifier,
    display,
    names_match,
    parse_nip05,
)
from appliance.nostr.profiles import Profiles
from appliance.tasks import BackgroundTasks
from relay_client import PrivateKeySigner, RelayPool, UnsignedEvent

ADA = PrivateKeySigner(bytes.fromhex("03".rjust(64, "0")))


def test_parse_and_display() -> None:
    assert parse_nip05("Ada@Example.org") == ("ada", "example.org")
    assert parse_nip05("example.org") == ("_", "example.org")
    assert display("_@example.org") == "example.org"
    for bad in ("", "a@", "@x.org", "a b@x.org", "a@localhost", "a@x.org/../y", "a@" + "x" * 300,
                "a@-x.org", "é@x.org"):
        with pytest.raises(Nip05Error):
            parse_nip05(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parse_raises_only_its_error(text: str) -> None:
    try:
        parse_nip05(text)
    except Nip05Error:
        pass


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.builds(
    lambda d: json.dumps(d).encode(),
    st.dictionaries(st.sampled_from(["names", "relays"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=10),
                              st.dictionaries(st.text(max_size=5), st.text(max_size=70),
                                              max_size=3)), max_size=2))))
def test_names_match_raises_only_its_error(body: bytes) -> None:
    try:
        names_match(body, "ada", ADA.public_key)
    except Nip05Error:
        pass


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def nostr_json(request: web.Request) -> web.StreamResponse:
        hits.append(request.match_info["domain"] + "/" + request.query.get("name", ""))
        domain = request.match_info["domain"]
        if domain == "redirect.example":
            raise web.HTTPFound("/other.example/.well-known/nostr.json")
        if domain == "huge.example":
            return web.Response(body=b'{"names": {"ada": "' + b"a" * 200_000 + b'"}}')
        if domain == "garbage.example":
            return web.Response(body=b"<html>")
        return web.json_response({"names": {"ada": ADA.public_key, "bob": "00" * 32}})

    app = web.Application()
    app.router.add_get("/{domain}/.well-known/nostr.json", nostr_json)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


def _verifier(base: str) -> Nip05Verifier:
    return Nip05Verifier(timeout=3, url_for=lambda local, domain:
                         f"{base}/{domain}/.well-known/nostr.json?name={local}")


async def test_verify_against_a_local_server(server: tuple[str, list[str]]) -> None:
    base, hits = server
    v = _verifier(base)
    assert await v.verify("ada@good.example", ADA.public_key)
    assert await v.verify("ada@good.example", ADA.public_key)  # cached
    assert hits == ["good.example/ada"]
    assert not await v.verify("bob@good.example", ADA.public_key)  # another key
    assert not await v.verify("ada@redirect.example", ADA.public_key)  # no redirects
    assert not await v.verify("ada@huge.example", ADA.public_key)  # body bounded
    assert not await v.verify("ada@garbage.example", ADA.public_key)
    assert not await v.verify("not an identifier", ADA.public_key)
    assert "other.example/ada" not in hits


class _Store:
    async def write(self, fn: Any) -> Any:
        return None

    async def read(self, fn: Any) -> Any:
        return {}


async def test_profiles_show_a_verified_identifier(server: tuple[str, list[str]]) -> None:
    base, _ = server
    learned: list[str] = []
    tasks = BackgroundTasks("test")
    profiles = Profiles(_Store(), RelayPool(), ("wss://r",), tasks,  # type: ignore[arg-type]
                        on_name=lambda pk, n: learned.append(n), nip05=_verifier(base))
    profiles.on_profile(ADA.sign_event(UnsignedEvent(
        kind=0, content=json.dumps({"name": "Ada", "nip05": "ada@good.example"}), tags=(),
        created_at=5)), "r")
    for _ in range(250):  # the verification runs as a background task
        if len(learned) == 2:
            break
        await asyncio.sleep(0.02)
    assert learned == ["Ada", "Ada (ada@good.example)"]
    assert profiles.name(ADA.public_key) == "Ada (ada@good.example)"
    await tasks.close()
