"""The TUI's key-block affordance (issue 9 §3) and peer text made inert at the DTO boundary."""

from __future__ import annotations

from appliance.api.schema import AddressBlock, ChatMessage, LogEvent
from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.screens.confirm import ConfirmScreen
from tui.testing import FakeAdminClient


async def test_b_lists_blocks_and_lifts_them_after_confirmation() -> None:
    fake = FakeAdminClient(relays=[])
    fake.blocks = [AddressBlock(address="203.0.113.9", since=0.0, until=900.0, failures=5),
                   AddressBlock(address="198.51.100.7", since=0.0, until=900.0, failures=6)]
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert [c for c in fake.calls if c[0] == "lift_block"] == [
            ("lift_block", "203.0.113.9"), ("lift_block", "198.51.100.7")]
        assert fake.blocks == []


async def test_b_without_blocks_only_notifies() -> None:
    fake = FakeAdminClient(relays=[])
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert fake.calls == []


def test_peer_text_in_dtos_is_inert_for_the_tui_and_cli() -> None:
    event = LogEvent.from_dict({"id": 1, "at": 0.0, "level": "warning", "kind": "x",
                                "stream_id": None, "message": "\x1b[2J\r\nforged"})
    assert "\x1b" not in event.message and "\n" not in event.message
    chat = ChatMessage.from_dict({"id": "a", "stream_id": "s", "pubkey": "p", "created_at": 1,
                                  "content": "two\nlines\x1b[31m\u202e"})
    assert chat.content.startswith("two\nlines") and "\x1b" not in chat.content
    assert "\u202e" not in chat.content
