"""Hearth against a real ``nostr-relay`` process, checked independently with nostr-tools (node)
and in Chromium: NIP-53 live events, chat both ways, the durable outbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.helpers.publishers import FFMPEG, ffmpeg_publish
from tests.nostr_fixtures import (  # noqa: F401 - fixtures
    RelayProcess,
    node_run,
    nostr_relay,
    nostr_tools_dir,
    relay_publish,
    relay_query,
    run_sync,
)

OPERATOR = "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"  # key 0x03

_VERIFY = r"""
const { verifyEvent } = require('nostr-tools/pure');
const events = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(events.map(e => verifyEvent(e))));
"""

_SIGN_CHAT = r"""
const { finalizeEvent, generateSecretKey } = require('nostr-tools/pure');
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const ev = finalizeEvent({kind: 1311, created_at: Math.floor(Date.now() / 1000),
  tags: [['a', req.address, '']], content: req.content}, generateSecretKey());
process.stdout.write(JSON.stringify(ev));
"""


def _app(relay: RelayProcess | None, **env: str) -> ApplianceProcess:
    overrides = {"HEARTH_NOSTR_OPERATOR_PUBKEY": OPERATOR,
                 "HEARTH_NOSTR_REPUBLISH_INTERVAL": "1", **env}
    if relay is not None:
        overrides["HEARTH_NOSTR_RELAYS"] = relay.url
    return ApplianceProcess(short_tmpdir(), env_overrides=overrides)


def _tag(event: dict[str, Any], name: str) -> list[str] | None:
    for t in event["tags"]:
        if t and t[0] == name:
            return list(t)
    return None


def _activity(relay: RelayProcess, app: ApplianceProcess, sid: str) -> dict[str, Any] | None:
    pk = _info(app)["activity_pubkey"]
    events = relay_query(relay.url, {"kinds": [30311], "authors": [pk], "#d": [sid]})
    return max(events, key=lambda e: e["created_at"]) if events else None


def _info(app: ApplianceProcess) -> dict[str, Any]:
    from appliance.api.admin_client import UnixSocketAdminClient as AdminClient

    async def go() -> dict[str, Any]:
        async with AdminClient(app.data_dir / "admin.sock") as client:
            data: dict[str, Any] = await client.request("GET", "/v1/nostr")
            return data

    result: dict[str, Any] = run_sync(go())
    return result


def _admin(app: ApplianceProcess, method: str, path: str, body: Any = None) -> Any:
    from appliance.api.admin_client import UnixSocketAdminClient as AdminClient

    async def go() -> Any:
        async with AdminClient(app.data_dir / "admin.sock") as client:
            return await client.request(method, path, body)

    return run_sync(go())


@pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")
def test_each_broadcast_is_its_own_live_event_verified_by_nostr_tools(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    """One channel, one key, two sessions: a planned broadcast announced with ``starts``, taken
    by the first publish (planned → live → ended past the grace window), then the same key
    again → a second broadcast with its own ``d``. Every version verifies with nostr-tools."""
    app = _app(nostr_relay, HEARTH_RTMP_GRACE_SECONDS="1").start()
    try:
        created = app.cli_json("channel", "create", "--title", "Relay <i>test</i>",
                               "--tag", "music")
        key = created["stream_key"]
        starts = int(time.time()) + 600
        plan = app.cli_json("broadcast", "plan", "--channel", created["id"], "--title",
                            "Relay <i>test</i>", "--starts",
                            time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(starts)))
        first = plan["id"]
        planned = app.wait_for(lambda: _activity(nostr_relay, app, first))
        assert _tag(planned, "status") == ["status", "planned"]
        assert _tag(planned, "starts") == ["starts", str(starts)]
        pub = ffmpeg_publish(f"{app.rtmp_base}/{key}", 30)
        try:
            live = app.wait_for(lambda: (e := _activity(nostr_relay, app, first)) and
                                _tag(e, "status") == ["status", "live"] and e, timeout=30)
            assert _tag(live, "title") == ["title", "Relay <i>test</i>"]
            assert _tag(live, "p") == ["p", OPERATOR, "", "host"]
            assert _tag(live, "streaming") == ["streaming", f"{app.base}/hls/{first}/index.m3u8"]
            assert _tag(live, "current_participants") is not None
            assert _tag(live, "t") == ["t", "music"]
            assert _tag(live, "d") == ["d", first]
            assert live["created_at"] > planned["created_at"]
        finally:
            pub.kill()
            pub.wait(10)
        # Publisher gone past the 1 s grace: the broadcast ends on its own.
        ended = app.wait_for(lambda: (e := _activity(nostr_relay, app, first)) and
                             _tag(e, "status") == ["status", "ended"] and e, timeout=20)
        assert _tag(ended, "ends") is not None
        # The recorder's URL, once it has the recording (a later republish may carry it).
        ended = app.wait_for(lambda: (e := _activity(nostr_relay, app, first)) and
                             _tag(e, "recording") and e, timeout=20)
        assert _tag(ended, "recording") == ["recording", f"{app.base}/vod/{first}/index.m3u8"]
        shown = app.cli_json("broadcast", "show", first)
        assert shown["recording_url"] == f"{app.base}/vod/{first}/index.m3u8"
        assert shown["thumbnail_url"] == f"{app.base}/thumb/{first}.jpg"
        pub = ffmpeg_publish(f"{app.rtmp_base}/{key}", 30)  # same key, next session
        try:
            second = app.wait_for(lambda: [b["id"] for b in app.cli_json(
                "broadcast", "list", "--channel", created["id"], "--status", "live")], 30)[0]
            assert second != first
            live2 = app.wait_for(lambda: (e := _activity(nostr_relay, app, second)) and
                                 _tag(e, "status") == ["status", "live"] and e, timeout=30)
        finally:
            pub.kill()
            pub.wait(10)
        app.cli("broadcast", "end", second)
        ended2 = app.wait_for(lambda: (e := _activity(nostr_relay, app, second)) and
                              _tag(e, "status") == ["status", "ended"] and e)
        assert _tag(live2, "d") == ["d", second] and _tag(ended2, "d") == ["d", second]
        # The first broadcast's address still says ended: the second did not overwrite it.
        assert _tag(_activity(nostr_relay, app, first) or {"tags": []}, "status") == [
            "status", "ended"]
        assert node_run(nostr_tools_dir, _VERIFY,
                        [planned, live, ended, live2, ended2]) == [True] * 5
        relays = _admin(app, "GET", "/v1/relays")
        assert relays[0]["url"] == nostr_relay.url and relays[0]["published"] >= 5
    finally:
        app.stop()


def test_chat_both_ways_with_relay_and_chromium(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    """A 1311 signed by nostr-tools reaches the API and the page; a message typed on the page
    (browser-generated key) reaches the relay; operator chat via the CLI too."""
    if CHROMIUM is None:
        pytest.skip("needs chromium")
    app = _app(nostr_relay).start()
    try:
        sid = app.create_stream("Chat test")["id"]
        address = _info(app)["activity_pubkey"]
        address = f"30311:{address}:{sid}"
        app.wait_for(lambda: _activity(nostr_relay, app, sid))
        with chromium_page() as page:
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: errors.append("dialog: " + d.message))
            page.goto(f"{app.base}/watch/{sid}")
            page.wait_for_function(
                "() => document.getElementById('chat').dataset.connected === '1'")
            ev = node_run(nostr_tools_dir, _SIGN_CHAT,
                          {"address": address, "content": "hello from nostr-tools"})
            ok = relay_publish(nostr_relay.url, ev)
            assert ok[2] is True, ok
            app.wait_for(lambda: any(m["id"] == ev["id"] for m in
                                     app.get(f"/api/streams/{sid}/chat").json()))
            page.wait_for_selector("#chat-log li >> text=hello from nostr-tools")
            page.fill("#chat-input", "typed in chromium")
            page.click("#chat-send")
            found = app.wait_for(lambda: [e for e in relay_query(
                nostr_relay.url, {"kinds": [1311], "#a": [address]})
                if e["content"] == "typed in chromium"])
            assert node_run(nostr_tools_dir, _VERIFY, found) == [True]
            assert found[0]["pubkey"] != ev["pubkey"]
            page.wait_for_selector("#chat-log li >> text=typed in chromium")
            app.cli("chat", "send", sid, "operator says hi")
            page.wait_for_selector("#chat-log li.operator >> text=operator says hi")
            app.wait_for(lambda: [e for e in relay_query(
                nostr_relay.url, {"kinds": [1311], "#a": [address]})
                if e["content"] == "operator says hi"])
            listed = app.cli_json("chat", "list", sid)
            assert [m["content"] for m in listed] == [
                "hello from nostr-tools", "typed in chromium", "operator says hi"]
            assert not errors, errors
    finally:
        app.stop()


def test_relay_down_outbox_holds_then_delivers_and_survives_kill9(
        nostr_relay: RelayProcess) -> None:  # noqa: F811
    """Relay down: acknowledged events wait in the outbox (depth visible); kill -9 of Hearth
    loses none of them; once the relay is back, they land."""
    nostr_relay.stop()
    app = _app(nostr_relay).start()
    try:
        sid = app.create_stream("Outbox test")["id"]
        sent = app.cli_json("chat", "send", sid, "while the relay was down")
        relays = app.wait_for(lambda: (r := _admin(app, "GET", "/v1/relays")) and
                              r[0]["outbox_depth"] >= 2 and r)
        assert relays[0]["state"] != "connected"
        app.kill9()
        nostr_relay.start()
        app.start()
        address = f"30311:{_info(app)['activity_pubkey']}:{sid}"
        app.wait_for(lambda: [e for e in relay_query(
            nostr_relay.url, {"kinds": [1311], "#a": [address]}) if e["id"] == sent["id"]],
            timeout=30)
        app.wait_for(lambda: _activity(nostr_relay, app, sid))
        assert [m["id"] for m in app.get(f"/api/streams/{sid}/chat").json()] == [sent["id"]]
        app.wait_for(lambda: _admin(app, "GET", "/v1/relays")[0]["outbox_depth"] == 0)
    finally:
        app.stop()


def test_forged_events_from_relay_are_dropped_and_counted(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    """A 1311 for another activity stored on the relay never enters our chat; valid ones do."""
    app = _app(nostr_relay).start()
    try:
        sid = app.create_stream("Forgery test")["id"]
        pk = _info(app)["activity_pubkey"]
        other = node_run(nostr_tools_dir, _SIGN_CHAT,
                         {"address": f"30311:{pk}:someother", "content": "not ours"})
        good = node_run(nostr_tools_dir, _SIGN_CHAT,
                        {"address": f"30311:{pk}:{sid}", "content": "ours"})
        assert relay_publish(nostr_relay.url, other)[2] is True
        assert relay_publish(nostr_relay.url, good)[2] is True
        app.wait_for(lambda: app.get(f"/api/streams/{sid}/chat").json())
        time.sleep(0.5)
        assert [m["content"] for m in app.get(f"/api/streams/{sid}/chat").json()] == ["ours"]
    finally:
        app.stop()


def test_deleting_a_stream_sends_a_nip09_request(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    """hearth stream delete → a kind 5 with the 30311's ``a`` and last ``e``, by its author."""
    app = _app(nostr_relay).start()
    try:
        sid = app.create_stream("short-lived")["id"]
        planned = app.wait_for(lambda: _activity(nostr_relay, app, sid))
        app.cli("stream", "delete", sid)
        pk = _info(app)["activity_pubkey"]

        def deletion() -> dict[str, Any] | None:
            found = relay_query(nostr_relay.url, {"kinds": [5], "authors": [pk]})
            return found[0] if found else None

        request = app.wait_for(deletion)
        assert ["a", f"30311:{pk}:{sid}"] in [list(t) for t in request["tags"]]
        assert ["k", "30311"] in [list(t) for t in request["tags"]]
        e_tags = [t[1] for t in request["tags"] if t[0] == "e"]
        assert e_tags and request["created_at"] > planned["created_at"]
        assert node_run(nostr_tools_dir, _VERIFY, [request]) == [True]
        assert app.get(f"/api/streams/{sid}").status == 404
        assert app.get(f"/watch/{sid}").status == 404
        assert sid not in app.cli("stream", "list").stdout
    finally:
        app.stop()
