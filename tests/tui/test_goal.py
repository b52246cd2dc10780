"""g on the main screen sets the selected channel's zap goal (NIP-75, issue 13) through the
admin client, as ``hearth nostr goal ID --sats N --title T`` does."""

from __future__ import annotations

from textual.widgets import Input, Label

from appliance.api.schema import StreamGoal
from tests.tui.conftest import clock, one_live
from tui.app import DashboardApp
from tui.client import ApplianceError
from tui.screens.error import ErrorScreen
from tui.screens.goal_form import GoalForm, parse_sats
from tui.screens.main import MainScreen
from tui.testing import drawn


def _text(app: DashboardApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


async def test_set_a_goal_for_the_selected_channel() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, GoalForm)
        assert _text(app, "#goal-current") == "No goal yet."
        await pilot.press(*"New [b]mic[/]", "tab", *"5,000", "ctrl+s")
        await pilot.pause()
        assert fake.calls[-1] == ("set_goal", sid, 5000, "New [b]mic[/]")
        assert isinstance(app.screen, MainScreen)
        assert [n.message for n in app._notifications] == [
            "Zap goal published: New [b]mic[/]: 5,000 sats"]


async def test_the_current_goal_is_shown_and_prefilled() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    fake.goals[sid] = StreamGoal("ab" * 32, "Guitar strings", 2_000_000, 150_000)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert _text(app, "#goal-current") == "Current goal: Guitar strings: 150 / 2,000 sats"
        assert app.screen.query_one("#f-title", Input).value == "Guitar strings"
        assert app.screen.query_one("#f-sats", Input).value == "2000"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert not [c for c in fake.calls if c[0] == "set_goal"]


async def test_bad_input_is_refused_locally_and_refusals_keep_the_form() -> None:
    fake = one_live()
    sid = next(iter(fake.streams))
    fake.errors["set_goal"] = ApplianceError("title must be 1..200 characters", field="title",
                                             status=400)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("g", "tab", *"100", "ctrl+s")  # no title
        await pilot.pause()
        assert "zaps are for" in _text(app, "#err-title")
        await pilot.press(*"Mic", "tab", "backspace", "backspace", "backspace", "0", "ctrl+s")
        await pilot.pause()
        assert "1 or more" in _text(app, "#err-sats")
        assert not [c for c in fake.calls if c[0] == "set_goal"]
        await pilot.press("backspace", *"100", "ctrl+s")  # the appliance refuses: 400 title
        await pilot.pause()
        assert isinstance(app.screen, GoalForm)
        assert _text(app, "#err-title") == "title must be 1..200 characters"
        assert app.screen.query_one("#f-sats", Input).value == "100"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [c for c in fake.calls if c[0] == "set_goal"] == [
            ("set_goal", sid, 100, "Mic"), ("set_goal", sid, 100, "Mic")]
        assert isinstance(app.screen, MainScreen)


async def test_an_appliance_refusal_opens_the_error_dialog() -> None:
    """E.g. the operator's remote signer cannot sign now (503): nothing to fix in the form."""
    fake = one_live()
    fake.errors["set_goal"] = ApplianceError("the operator's signer cannot sign now: offline",
                                             status=503)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("g", *"Mic", "tab", *"100", "ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)


async def test_reading_the_goal_fails_before_the_form() -> None:
    """A channel that never broadcast has no goal to set: the appliance's 404 is shown."""
    fake = one_live()
    fake.errors["get_goal"] = ApplianceError("no such broadcast", status=404)
    app = DashboardApp(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await fake.subscribed.wait()
        await drawn(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)


def test_parse_sats() -> None:
    assert parse_sats("5000") == 5000
    assert parse_sats(" 5,000 ") == 5000
    assert parse_sats("2 100_000") == 2_100_000
    for bad in ("", "0", "-5", "1.5", "٣", "abc", "9" * 17):
        assert parse_sats(bad) is None, bad
