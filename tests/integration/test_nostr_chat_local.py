"""Chat with zero relays (page ↔ API only): bad input over the public WebSocket, moderation,
and XSS payloads that must render as text in Chromium."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from relay_client import PrivateKeySigner, UnsignedEvent
from tests.helpers.appliance import ApplianceProcess
from tests.helpers.browser import CHROMIUM, chromium_page
from tests.nostr_fixtures import run_sync

XSS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "\"><svg onload=alert(3)>",
    "</script><script>alert(4)</script>",
    "javascript:alert(5)",
]


def _admin(app: ApplianceProcess, method: str, path: str, body: Any = None) -> Any:
    from appliance.api.admin_client import UnixSocketAdminClient as AdminClient

    async def go() -> Any:
        async with AdminClient(app.data_dir / "admin.sock") as client:
            return await client.request(method, path, body)

    return run_sync(go())


def _chat_event(signer: PrivateKeySigner, address: str, content: str,
                created_at: int | None = None) -> dict[str, Any]:
    unsigned = UnsignedEvent(kind=1311, content=content, tags=(("a", address, ""),),
                             created_at=int(time.time()) if created_at is None else created_at)
    return signer.sign_event(unsigned).to_dict()


async def _exchange(url: str, frames: list[Any]) -> list[dict[str, Any]]:
    """Send frames one by one; collect the answer (ok/error) to each."""
    answers: list[dict[str, Any]] = []
    async with connect(url, max_size=2**20) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        for frame in frames:
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] in ("ok", "error"):
                    answers.append(msg)
                    break
    return answers


def test_ws_rejects_forged_oversized_and_flooding_events(appliance: ApplianceProcess) -> None:
    """Bad ids, bad signatures, other activities, stale/future dates, >8 KiB frames and floods
    are refused with a readable error and counted; good ones are stored."""
    sid = appliance.create_stream("WS test")["id"]
    info = _admin(appliance, "GET", "/v1/nostr")
    address = f"30311:{info['activity_pubkey']}:{sid}"
    url = appliance.base.replace("http", "ws") + f"/api/streams/{sid}/chat/ws"
    keys = [PrivateKeySigner.generate() for _ in range(8)]

    good = _chat_event(keys[0], address, "a good message")
    bad_id = dict(_chat_event(keys[1], address, "x"), content="tampered")
    bad_sig = _chat_event(keys[2], address, "y")
    bad_sig["sig"] = ("0" if bad_sig["sig"][0] != "0" else "1") + bad_sig["sig"][1:]
    other = _chat_event(keys[3], f"30311:{info['activity_pubkey']}:nope", "z")
    future = _chat_event(keys[4], address, "future", int(time.time()) + 3600)
    old = _chat_event(keys[5], address, "old", int(time.time()) - 8 * 86400)
    big = _chat_event(keys[6], address, "B" * 9000)
    answers = run_sync(_exchange(url, [{"type": "event", "event": e} for e in
                                       (good, bad_id, bad_sig, other, future, old, big)]
                                 + ["not json"]))
    assert answers[0] == {"type": "ok", "id": good["id"]}
    reasons = [a.get("reason") for a in answers[1:6]]
    assert reasons == ["bad-id", "bad-signature", "other-activity", "created-at-future",
                       "created-at-too-old"]
    assert "too large" in answers[6]["error"]
    assert answers[7]["type"] == "error"

    # Flood from one key: 2 msgs / 3 s per pubkey. Only the wiring is shown here; the limits
    # over time (timeouts, the per-address bucket, repeated text) are checked on an injected
    # clock in tests/appliance/test_chat_limits.py, without sleeping.
    spam = [_chat_event(keys[7], address, f"spam {i}") for i in range(4)]
    flood = run_sync(_exchange(url, [{"type": "event", "event": e} for e in spam]))
    assert [a["type"] for a in flood[:2]] == ["ok", "ok"]
    assert flood[2]["reason"] == "rate-limited" and "slow down" in flood[2]["error"]

    stored = appliance.get(f"/api/streams/{sid}/chat").json()
    assert [m["content"] for m in stored] == ["a good message", "spam 0", "spam 1"]
    counters = _admin(appliance, "GET", "/v1/nostr")["rejected"]
    for reason in ("bad-id", "bad-signature", "other-activity", "created-at-future",
                   "created-at-too-old", "frame-too-large", "rate-limited"):
        assert counters.get(reason, 0) >= 1, (reason, counters)


def test_moderation_hide_pin_mute(appliance: ApplianceProcess) -> None:
    """Hidden messages and muted authors leave the public chat but stay, flagged, in the admin
    list; pin marks the message."""
    sid = appliance.create_stream("Moderation")["id"]
    address = f"30311:{_admin(appliance, 'GET', '/v1/nostr')['activity_pubkey']}:{sid}"
    url = appliance.base.replace("http", "ws") + f"/api/streams/{sid}/chat/ws"
    a, b = PrivateKeySigner.generate(), PrivateKeySigner.generate()
    ea, eb = _chat_event(a, address, "from a"), _chat_event(b, address, "from b")
    run_sync(_exchange(url, [{"type": "event", "event": ea}, {"type": "event", "event": eb}]))
    op = _admin(appliance, "POST", f"/v1/streams/{sid}/chat", {"content": "welcome"})
    assert op["from_operator"] is True
    _admin(appliance, "POST", f"/v1/streams/{sid}/chat/{ea['id']}/hide")
    _admin(appliance, "POST", "/v1/mutes", {"pubkey": b.public_key})
    pinned = _admin(appliance, "POST", f"/v1/streams/{sid}/chat/{op['id']}/pin")
    assert pinned["pinned"] is True
    public = appliance.get(f"/api/streams/{sid}/chat").json()
    assert [m["content"] for m in public] == ["welcome"]
    assert public[0]["pinned"] is True
    admin = _admin(appliance, "GET", f"/v1/streams/{sid}/chat")
    assert [(m["content"], m["hidden"], m["muted"]) for m in admin] == [
        ("from a", True, False), ("from b", False, True), ("welcome", False, False)]
    _admin(appliance, "POST", f"/v1/streams/{sid}/chat/{ea['id']}/unhide")
    _admin(appliance, "DELETE", f"/v1/mutes/{b.public_key}")
    assert len(appliance.get(f"/api/streams/{sid}/chat").json()) == 3
    assert _admin(appliance, "GET", "/v1/relays") == []


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_zero_relay_chat_in_chromium_and_xss_never_executes(appliance: ApplianceProcess) -> None:
    """Two pages chat through the appliance alone; XSS payloads in the title, summary and chat
    render literally and never run (no dialog, no page error)."""
    created = appliance.cli_json("stream", "create", "--title", XSS[0], "--summary", XSS[1])
    sid = created["id"]
    address = f"30311:{_admin(appliance, 'GET', '/v1/nostr')['activity_pubkey']}:{sid}"
    url = appliance.base.replace("http", "ws") + f"/api/streams/{sid}/chat/ws"
    signer = PrivateKeySigner.generate()
    with chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: errors.append("dialog: " + d.message))
        page.goto(f"{appliance.base}/watch/{sid}")
        assert page.text_content("#title") == XSS[0]
        page.wait_for_function(
            "() => document.getElementById('chat').dataset.connected === '1'")
        for i, payload in enumerate(XSS[1:4]):
            if i:
                time.sleep(1.6)  # stay inside 2 msgs / 3 s
            run_sync(_exchange(url, [{"type": "event",
                                      "event": _chat_event(signer, address, payload)}]))
        page.wait_for_function("() => document.querySelectorAll('#chat-log li').length === 3")
        texts = page.eval_on_selector_all("#chat-log li .text",
                                          "els => els.map(e => e.textContent)")
        assert texts == XSS[1:4]
        assert page.locator("#chat-log img, #chat-log script, #chat-log svg").count() == 0
        page.fill("#chat-input", XSS[4])
        page.click("#chat-send")
        page.wait_for_function("() => document.querySelectorAll('#chat-log li').length === 4")
        stored = appliance.get(f"/api/streams/{sid}/chat").json()
        assert stored[-1]["content"] == XSS[4]
        page.goto(f"{appliance.base}/")
        page.wait_for_timeout(300)
        assert not errors, errors
