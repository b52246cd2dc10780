"""The TUI's key-block affordance (issue 9 §3)."""

from __future__ import annotations

from appliance.api.schema import AddressBlock
from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.screens.confirm import ConfirmScreen
from tui.testing import FakeAdminClient, drawn


async def test_b_lists_blocks_and_lifts_them_after_confirmation() -> None:
    fake = FakeAdminClient(relays=[])
    fake.blocks = [AddressBlock(address="203.0.113.9", since=0.0, until=900.0, failures=5),
                   AddressBlock(address="198.51.100.7", since=0.0, until=900.0, failures=6)]
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
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
        await drawn(pilot)
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert fake.calls == []
