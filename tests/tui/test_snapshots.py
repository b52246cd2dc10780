"""Every dashboard screen and state, snapshotted with a fake admin client and frozen clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from tests.tui.conftest import clock, many_streams, one_live, with_errors
from tui.app import DashboardApp
from tui.testing import FakeAdminClient, make_chat

Snap = Callable[..., bool]


def settled(fake: FakeAdminClient,
            then: Callable[[Pilot[Any]], Awaitable[None]] | None = None,
            ) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fake.subscribed.wait()
        await pilot.pause()
        await pilot.pause()
        if then is not None:
            await then(pilot)
            await pilot.pause()

    return run_before


def test_empty(snap_compare: Snap) -> None:
    """A fresh appliance: no streams, no events, no relays; hints say what to do."""
    fake = FakeAdminClient(relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake))


def test_one_live_stream(snap_compare: Snap) -> None:
    """One live stream with health figures, a viewer sparkline, chat, an event and a relay."""
    fake = one_live()
    sid = next(iter(fake.streams))

    async def viewers(pilot: Pilot[Any]) -> None:
        for n in (12, 15, 19, 24, 22, 30):
            fake.emit("viewers", {"stream_id": sid, "current": n, "peak": 30, "total": 60})
        fake.emit("chat", {"stream_id": sid, "reason": "new",
                           "message": make_chat(sid, 9, "encore!").to_dict()})

    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake, viewers))


def test_one_live_stream_80x24(snap_compare: Snap) -> None:
    """The same dashboard on the smallest supported terminal (80×24)."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(80, 24),
                        run_before=settled(fake))


def test_one_live_stream_light(snap_compare: Snap) -> None:
    """Light theme (t): everything stays readable on a light terminal."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake), press=["t"])


def test_many_streams(snap_compare: Snap) -> None:
    """Eighteen streams: live first, then planned, then ended; warn and waiting verdicts."""
    fake = many_streams()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake))


def test_errors(snap_compare: Snap) -> None:
    """Bad keys, a codec refusal, a reconnect and a failing relay; chat unavailable."""
    fake = with_errors()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake))


def test_lost_connection(snap_compare: Snap) -> None:
    """The socket drops: a banner says so and the last known state stays on screen."""
    fake = one_live()

    async def cut(pilot: Pilot[Any]) -> None:
        fake.disconnect()
        await pilot.pause()

    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake, cut))


def test_new_stream_form(snap_compare: Snap) -> None:
    """n opens the create form with the field hints."""
    fake = FakeAdminClient(relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(100, 30),
                        run_before=settled(fake), press=["n"])


def test_form_validation_error(snap_compare: Snap) -> None:
    """A 400 from the appliance is shown under the field it names."""
    from tui.client import ApplianceError

    fake = FakeAdminClient(relays=[])
    fake.errors["create_stream"] = ApplianceError("image must be an https URL",
                                                  field="image", status=400)
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(100, 30),
                        run_before=settled(fake),
                        press=["n", *"Jam", "tab", "tab", "tab", *"ftp://x", "ctrl+s"])


def test_credentials_shown_once(snap_compare: Snap) -> None:
    """After create: server URL, stream key (shown once), watch link and OBS advice."""
    fake = FakeAdminClient(relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(100, 30),
                        run_before=settled(fake), press=["n", *"Jam", "ctrl+s"])


def test_end_confirmation(snap_compare: Snap) -> None:
    """x asks before ending the selected stream."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(100, 30),
                        run_before=settled(fake), press=["x"])
