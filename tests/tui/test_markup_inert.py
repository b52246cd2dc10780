"""Text a peer or the appliance chose (titles, chat, relay and server error messages) is shown
literally: Textual would parse "[/]" or "[bold]" in a plain string as markup and raise (or
restyle the screen). docs/threat-model.md §admin-socket: the TUI renders peer text inert."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from appliance.api.schema import LogEvent, RelayInfo
from tests.tui.conftest import clock
from tui.app import DashboardApp
from tui.client import ApplianceError
from tui.testing import T0, FakeAdminClient, drawn, make_chat, make_stream

HOSTILE = "[/]oops[bold red]x[/bold red][@click=app.quit]y[/]"


def _hostile_client() -> FakeAdminClient:
    s = make_stream(1, title=HOSTILE)
    return FakeAdminClient(
        [s],
        events=[LogEvent(1, T0 - 5, "warning", HOSTILE, s.id, HOSTILE)],
        chat={s.id: [make_chat(s.id, 1, HOSTILE)]},
        relays=[RelayInfo("wss://relay.example.org/" + HOSTILE, "error", last_error=HOSTILE)])


def _screen_text(app: DashboardApp) -> str:
    """What the active screen's labels show (Label is a Static)."""
    return "\n".join(str(widget.render()) for widget in app.screen.query(Static))


@pytest.mark.parametrize("keys", [[], ["x"], ["k"]], ids=["main", "end-confirm", "rotate"])
async def test_peer_text_never_parses_as_markup(keys: list[str]) -> None:
    fake = _hostile_client()
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        assert app.is_running
        if keys:
            assert "[/]oops" in _screen_text(app), _screen_text(app)


async def test_server_error_text_is_shown_literally() -> None:
    fake = _hostile_client()
    sid = next(iter(fake.streams))
    fake.errors["end_stream"] = ApplianceError(HOSTILE, title=HOSTILE, status=409)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        for _ in range(5):
            await pilot.pause()
        assert app.is_running
        text = _screen_text(app)
        assert text.count("[/]oops") >= 2, text  # title and message, literally
        assert any(sid in map(str, call) for call in fake.calls), fake.calls
