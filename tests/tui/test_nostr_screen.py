"""The Nostr signer screen: state, bunker pairing, nostrconnect QR, forget (pilot)."""

from __future__ import annotations

from textual.widgets import Static

from appliance.api.schema import pairing_qr
from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.screens.nostr import NostrScreen, describe
from tui.testing import FakeAdminClient, drawn


async def test_pair_show_qr_and_forget() -> None:
    fake = FakeAdminClient(relays=[])
    fake.signer.update(state="unreachable", last_error="no answer to sign_event within 15 s",
                       waiting={"s1": "no answer to sign_event within 15 s"})
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 60)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("N")
        await pilot.pause()
        assert isinstance(app.screen, NostrScreen)
        state = str(app.screen.query_one("#nostr-state", Static).render())
        assert "unreachable" in state and "waiting: live event of s1" in state
        await pilot.click("#bunker-uri")
        await pilot.press(*"bunker://x", "enter")
        await pilot.pause()
        assert ("pair_bunker", "bunker://x") in fake.calls
        app.screen.set_focus(None)  # leave the field: the keys act on the screen again
        await pilot.press("c")
        await pilot.pause()
        qr = str(app.screen.query_one("#nostr-qr", Static).render())
        assert "nostrconnect://" in qr and "▀" in qr
        await pilot.press("d")
        await pilot.pause()
        assert ("unpair_signer",) in fake.calls


def test_qr_and_text() -> None:
    qr = pairing_qr("nostrconnect://" + "ab" * 32 + "?relay=wss%3A%2F%2Fr&secret=00")
    lines = qr.splitlines()
    assert len({len(line) for line in lines}) == 1 and len(lines) > 20
    assert "signs for" in describe({"signer": {"state": "connected", "user_pubkey": "x"}})
