"""Reactions (NIP-25) and zaps (NIP-57) live on the page, against a real relay: a kind 7 and
a kind 9735 from another client (nostr-tools in node) show up without a reload; a reaction
clicked on the page reaches the relay and verifies with nostr-tools."""

from __future__ import annotations

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

# Another client: a chat message, a reaction to the stream, one to that message, and a zap
# (request by the zapper, receipt by an "LNURL server" key), all with fresh keys.
_OTHERS = r"""
const { finalizeEvent, generateSecretKey, getPublicKey } = require('nostr-tools/pure');
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const now = Math.floor(Date.now() / 1000);
const viewer = generateSecretKey(), zapper = generateSecretKey(), lnurl = generateSecretKey();
const a = ['a', req.address, ''];
const msg = finalizeEvent({kind: 1311, created_at: now, tags: [a], content: 'react to me'},
  viewer);
const onStream = finalizeEvent({kind: 7, created_at: now, content: '🔥',
  tags: [a, ['p', req.host], ['k', '30311']]}, viewer);
const onMsg = finalizeEvent({kind: 7, created_at: now, content: '🤙',
  tags: [['e', msg.id, ''], ['p', msg.pubkey], a, ['k', '1311']]}, zapper);
const idOnly = finalizeEvent({kind: 7, created_at: now, content: '💯',
  tags: [['e', msg.id], ['p', msg.pubkey], ['k', '1311']]}, lnurl);
const zapRequest = finalizeEvent({kind: 9734, created_at: now, content: 'great stream',
  tags: [['p', req.host], a, ['amount', '21000'], ['relays', req.relay]]}, zapper);
const receipt = finalizeEvent({kind: 9735, created_at: now, content: '',
  tags: [['p', req.host], a, ['bolt11', req.bolt11],
         ['description', JSON.stringify(zapRequest)]]}, lnurl);
process.stdout.write(JSON.stringify({msg, onStream, onMsg, idOnly, receipt,
  zapper: getPublicKey(zapper), lnurl: getPublicKey(lnurl)}));
"""

# 210 nano-BTC = 21,000 msat (BOLT-11 human-readable part; the data part has no '1').
BOLT11 = "lnbc210n1pjqqqqqpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypq"


@pytest.mark.slow
def test_reactions_and_zaps_from_another_client_show_live(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    if CHROMIUM is None:
        pytest.skip("needs chromium")
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": nostr_relay.url}).start()
    try:
        info = app.cli_json("nostr", "show")
        sid = app.create_stream("Reactions")["id"]
        address = f"30311:{info['activity_pubkey']}:{sid}"
        app.wait_for(lambda: relay_query(nostr_relay.url, {"kinds": [30311], "#d": [sid]}))
        with chromium_page() as page:
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{app.base}/watch/{sid}")
            page.wait_for_function(
                "() => document.getElementById('chat').dataset.connected === '1'")
            ev: dict[str, Any] = node_run(nostr_tools_dir, _OTHERS, {
                "address": address, "host": info["activity_pubkey"], "relay": nostr_relay.url,
                "bolt11": BOLT11})
            assert relay_publish(nostr_relay.url, ev["msg"])[2] is True
            page.wait_for_selector("#chat-log li >> text=react to me")
            for key in ("onStream", "onMsg", "idOnly", "receipt"):
                assert relay_publish(nostr_relay.url, ev[key])[2] is True, key
            page.wait_for_selector("#reactions button >> text=🔥 1")
            page.wait_for_selector(f"#chat-log li[data-id='{ev['msg']['id']}'] .reacts"
                                   " >> text=🤙 1")
            # A reaction that tags the message by id only (no "a") is followed too.
            page.wait_for_selector(f"#chat-log li[data-id='{ev['msg']['id']}'] .reacts"
                                   " >> text=💯 1")
            zap = page.wait_for_selector("#chat-log li >> text=great stream")
            assert zap is not None
            row = page.locator(f"#chat-log li[data-id='{ev['receipt']['id']}']")
            assert "21 sats" in row.inner_text()
            # Shown as the zapper's (zap request author), not the LNURL server's.
            assert row.get_attribute("data-pubkey") == ev["zapper"]
            listed = app.cli_json("chat", "list", sid)
            zaps = [m for m in listed if m["kind"] == 9735]
            assert zaps and zaps[0]["zap_msats"] == 21000 and zaps[0]["pubkey"] == ev["zapper"]

            page.click("#reactions button[data-emoji='👏']")
            page.wait_for_selector("#reactions button >> text=👏 1")
            mine = app.wait_for(lambda: [e for e in relay_query(
                nostr_relay.url, {"kinds": [7], "#a": [address]}) if e["content"] == "👏"])
            assert node_run(nostr_tools_dir, _VERIFY, mine) == [True]
            assert ["k", "30311"] in mine[0]["tags"]
            counts = app.get(f"/api/streams/{sid}/reactions").json()
            assert counts[""] == {"🔥": 1, "👏": 1}
            assert counts[ev["msg"]["id"]] == {"🤙": 1, "💯": 1}
            assert not errors, errors
    finally:
        app.stop()


# A zap of the goal event only (NIP-75: zaps to a goal tag it with "e"; no "a" tag here).
_GOAL_ZAP = r"""
const { finalizeEvent, generateSecretKey } = require('nostr-tools/pure');
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const now = Math.floor(Date.now() / 1000);
const zapper = generateSecretKey(), lnurl = generateSecretKey();
const zapRequest = finalizeEvent({kind: 9734, created_at: now, content: 'for the mic',
  tags: [['p', req.host], ['e', req.goal], ['amount', '21000'], ['relays', req.relay]]}, zapper);
const receipt = finalizeEvent({kind: 9735, created_at: now, content: '',
  tags: [['p', req.host], ['e', req.goal], ['bolt11', req.bolt11],
         ['description', JSON.stringify(zapRequest)]]}, lnurl);
process.stdout.write(JSON.stringify(receipt));
"""


@pytest.mark.slow
def test_zap_goal_linked_from_the_live_event_and_shown_as_progress(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    if CHROMIUM is None:
        pytest.skip("needs chromium")
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": nostr_relay.url}).start()
    try:
        info = app.cli_json("nostr", "show")
        host = info["activity_pubkey"]
        sid = app.create_stream("Goal")["id"]
        assert "No goal" in app.cli("nostr", "goal", sid).stdout
        goal = app.cli_json("nostr", "goal", sid, "--sats", "1000", "--title", "New mic")
        assert goal["amount_msats"] == 1_000_000 and goal["progress_msats"] == 0
        ev = app.wait_for(lambda: relay_query(nostr_relay.url, {"kinds": [9041],
                                                                "authors": [host]}))
        assert ev[0]["id"] == goal["event_id"] and ev[0]["content"] == "New mic"
        assert ["amount", "1000000"] in ev[0]["tags"]
        assert ["relays", nostr_relay.url] in ev[0]["tags"]
        assert node_run(nostr_tools_dir, _VERIFY, ev) == [True]
        live = app.wait_for(lambda: [e for e in relay_query(
            nostr_relay.url, {"kinds": [30311], "#d": [sid]})
            if ["goal", goal["event_id"]] in e["tags"]])
        assert node_run(nostr_tools_dir, _VERIFY, live) == [True]
        bad = app.cli("nostr", "goal", sid, "--sats", "0", check=False)
        assert bad.returncode == 1 and "amount" in bad.stderr
        with chromium_page() as page:
            page.goto(f"{app.base}/watch/{sid}")
            page.wait_for_selector("#goal >> text=New mic: 0 / 1000 sats")
            receipt = node_run(nostr_tools_dir, _GOAL_ZAP, {
                "host": host, "goal": goal["event_id"], "relay": nostr_relay.url,
                "bolt11": BOLT11})
            assert relay_publish(nostr_relay.url, receipt)[2] is True
            page.wait_for_selector("#goal >> text=New mic: 21 / 1000 sats")
            assert page.eval_on_selector("#goal progress", "p => p.value") == 21
        assert "21 / 1000 sats" in app.cli("nostr", "goal", sid).stdout
    finally:
        app.stop()
