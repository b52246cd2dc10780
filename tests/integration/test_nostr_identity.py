"""Hearth's own identity and links, against a real relay, checked by nostr-tools (node) and
in Chromium: kind 0 / 10002 / 31990 of the service key, the naddr of a live event (decoded by
nostr-tools, opened through the NIP-89 /nostr/<bech32> route, shown as a nostr: link), and a
chatter's name from a kind 0 that another client published, shown live on the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.nostr_fixtures import (  # noqa: F401 - fixtures
    RelayProcess,
    node_run,
    nostr_relay,
    nostr_tools_dir,
    relay_publish,
    relay_query,
)

_VERIFY = r"""
const { verifyEvent } = require('nostr-tools/pure');
const events = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(events.map(e => verifyEvent(e))));
"""

_DECODE = r"""
const { decode } = require('nostr-tools/nip19');
const code = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(decode(code)));
"""

# Another client: a kind 0 and a 1311 by the same fresh key.
_CHATTER = r"""
const { finalizeEvent, generateSecretKey } = require('nostr-tools/pure');
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const sk = generateSecretKey();
const now = Math.floor(Date.now() / 1000);
const profile = finalizeEvent({kind: 0, created_at: now, tags: [],
  content: JSON.stringify({name: req.name, picture: 'https://tracker.example/a.png'})}, sk);
const chat = finalizeEvent({kind: 1311, created_at: now, tags: [['a', req.address, '']],
  content: req.content}, sk);
process.stdout.write(JSON.stringify([profile, chat]));
"""


def _tag(ev: dict[str, Any], name: str) -> list[str] | None:
    return next((list(t) for t in ev["tags"] if t and t[0] == name), None)


@pytest.mark.slow
def test_service_identity_naddr_and_names(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    if CHROMIUM is None:
        pytest.skip("needs chromium")
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": nostr_relay.url, "HEARTH_NOSTR_PROFILE_NAME": "Test Hearth"}
    ).start()
    try:
        info = app.cli_json("nostr", "show")
        service = info["service_pubkey"]

        def identity() -> dict[int, dict[str, Any]] | None:
            evs = relay_query(nostr_relay.url, {"kinds": [0, 10002, 31990],
                                                "authors": [service]})
            got = {e["kind"]: e for e in evs}
            return got if len(got) == 3 else None

        ident = app.wait_for(identity)
        profile = json.loads(ident[0]["content"])
        assert profile["name"] == "Test Hearth" and profile["website"] == app.base
        assert _tag(ident[10002], "r") == ["r", nostr_relay.url]
        assert _tag(ident[31990], "k") == ["k", "30311"]
        assert _tag(ident[31990], "web") == ["web", f"{app.base}/nostr/<bech32>", "naddr"]
        assert node_run(nostr_tools_dir, _VERIFY, list(ident.values())) == [True] * 3

        sid = app.create_stream("Identity test")["id"]
        app.wait_for(lambda: relay_query(nostr_relay.url, {"kinds": [30311], "#d": [sid]}))
        link = app.cli("stream", "show", sid).stdout
        naddr = next(w for w in link.split() if w.startswith("nostr:naddr1"))[len("nostr:"):]
        decoded = node_run(nostr_tools_dir, _DECODE, naddr)
        assert decoded["type"] == "naddr"
        assert decoded["data"] == {"identifier": sid, "pubkey": info["activity_pubkey"],
                                   "kind": 30311, "relays": [nostr_relay.url]}
        redirect = app.get(f"/nostr/{naddr}", follow=False)
        assert redirect.status == 302 and redirect.headers["Location"] == f"/watch/{sid}"
        assert app.get(f"/nostr/nostr:{naddr}", follow=False).status == 302
        corrupted = naddr[:-1] + ("q" if naddr[-1] != "q" else "p")  # checksum fails
        for bad in ("garbage", "npub1" + "q" * 58, corrupted, "x" * 2000):
            assert app.get(f"/nostr/{bad}", follow=False).status == 404

        with chromium_page() as page:
            errors: list[str] = []
            requests: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{app.base}/watch/{sid}")
            page.wait_for_function(
                "() => document.getElementById('chat').dataset.connected === '1'")
            assert page.get_attribute("#nostr-link", "href") == f"nostr:{naddr}"
            profile_ev, chat_ev = node_run(nostr_tools_dir, _CHATTER, {
                "address": f"30311:{info['activity_pubkey']}:{sid}", "name": "Ada <b>L</b>",
                "content": "hi, I have a name"})
            assert relay_publish(nostr_relay.url, profile_ev)[2] is True
            assert relay_publish(nostr_relay.url, chat_ev)[2] is True
            page.wait_for_selector("#chat-log li >> text=hi, I have a name")
            # The kind 0 is fetched after the message shows: the name replaces the short key.
            page.wait_for_selector("#chat-log li .author >> text=Ada <b>L</b>", timeout=15000)
            assert page.locator("#chat-log b").count() == 0  # text, never markup
            listed = app.cli_json("chat", "list", sid)
            assert listed[-1]["display_name"] == "Ada <b>L</b>"
            assert not [u for u in requests if "tracker.example" in u]  # no avatar loads
            assert not errors, errors
    finally:
        app.stop()
