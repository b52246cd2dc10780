"""Every dashboard screen and state, snapshotted at 80×24 (the smallest supported terminal)
and 140×40, with a fake admin client and a frozen clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

import tui.screens.main
from appliance.api.schema import (
    AddressBlock,
    ChatChange,
    ChatEvent,
    StreamGoal,
    ViewersEvent,
    WebhookState,
)
from tests.tui.conftest import clock, many_streams, one_live, with_errors
from tui.app import DashboardApp
from tui.client import ApplianceError
from tui.testing import (
    T0,
    FakeAdminClient,
    drawn,
    make_analytics,
    make_chat,
    make_recording,
    make_stream,
    make_webhook,
)

Snap = Callable[..., bool]
SIZES = pytest.mark.parametrize("size", [(80, 24), (140, 40)], ids=["80x24", "140x40"])


def settled(fake: FakeAdminClient,
            then: Callable[[Pilot[Any]], Awaitable[None]] | None = None,
            ) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fake.subscribed.wait()
        await drawn(pilot)
        if then is not None:
            await then(pilot)
            await drawn(pilot)

    return run_before


@SIZES
def test_empty(snap_compare: Snap, size: tuple[int, int]) -> None:
    """A fresh appliance: no streams, no events, no relays; hints say what to do."""
    fake = FakeAdminClient(relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake))


@SIZES
def test_one_live_stream(snap_compare: Snap, size: tuple[int, int]) -> None:
    """One live stream: health and keyframe columns, viewer sparkline, chat, an event that
    names its stream, and a relay."""
    fake = one_live()
    sid = next(iter(fake.streams))

    async def viewers(pilot: Pilot[Any]) -> None:
        for n in (12, 15, 19, 24, 22, 30):
            fake.emit(ViewersEvent(sid, current=n, peak=30, total=60, at=T0))
        fake.emit(ChatEvent(sid, ChatChange.NEW, make_chat(sid, 9, "encore!"), at=T0))

    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake, viewers))


def test_one_live_stream_light(snap_compare: Snap) -> None:
    """Light theme (t): everything stays readable on a light terminal."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=(120, 40),
                        run_before=settled(fake), press=["t"])


@SIZES
def test_typing_chat(snap_compare: Snap, size: tuple[int, int]) -> None:
    """c focuses the chat input; the footer still says how to send and how to leave."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["c", *"hello"])


@SIZES
def test_chat_cursor(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Moving into the chat highlights a message; the moderation keys are in the footer."""
    fake = one_live()

    async def into_chat(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one("#chat-list").focus()
        await pilot.press("up")

    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake, into_chat))


@SIZES
def test_many_streams(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Eighteen streams: live first, then planned, then ended; warn and waiting verdicts."""
    fake = many_streams()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake))


@SIZES
def test_errors(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Bad keys, a codec refusal, a reconnect and a failing relay; chat unavailable.
    Long event lines wrap whole (nothing cut from their middle)."""
    fake = with_errors()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake))


@SIZES
def test_lost_connection(snap_compare: Snap, size: tuple[int, int],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket drops: a banner says so and the last known state stays on screen."""
    # The feed retries on a real timer, and a retry changes the banner (its reason becomes
    # the failed reconnect's): a backoff longer than the test keeps the first failure shown
    # however slow the run is.
    monkeypatch.setattr(tui.screens.main, "BACKOFF", (30.0,))
    fake = one_live()

    async def cut(pilot: Pilot[Any]) -> None:
        fake.disconnect()
        await pilot.pause()

    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake, cut))


@SIZES
def test_new_stream_form(snap_compare: Snap, size: tuple[int, int]) -> None:
    """n opens the create form: every field, Save/Cancel and the footer keys are visible."""
    fake = FakeAdminClient(relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["n"])


@SIZES
def test_form_validation_error(snap_compare: Snap, size: tuple[int, int]) -> None:
    """A 400 from the appliance is shown under the field it names."""
    fake = FakeAdminClient(relays=[])
    fake.errors["create_stream"] = ApplianceError("image must be an https URL",
                                                  field="image", status=400)
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake),
                        press=["n", *"Jam", "tab", "tab", "tab", *"ftp://x", "ctrl+s"])


@SIZES
def test_credentials_shown_once(snap_compare: Snap, size: tuple[int, int]) -> None:
    """After a key rotation (the same screen as after create): server URL, the stream key
    (shown once), watch link and OBS advice; Done (Enter) has the focus. (After create the
    dashboard behind the dialog is still loading the new stream, which would make the
    snapshot depend on timing.)"""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["k", "y"])


@SIZES
def test_end_confirmation(snap_compare: Snap, size: tuple[int, int]) -> None:
    """x asks before ending the selected stream."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["x"])


@SIZES
def test_error_dialog(snap_compare: Snap, size: tuple[int, int]) -> None:
    """An appliance refusal that is not about a form field opens the error dialog."""
    fake = one_live()
    fake.errors["end_stream"] = ApplianceError("the stream is being deleted",
                                               title="Cannot end the stream", status=409)
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["x", "y"])


@SIZES
def test_recordings_screen(snap_compare: Snap, size: tuple[int, int]) -> None:
    """R: the recordings, a failed one highlighted with the reason it stopped."""
    fake = FakeAdminClient(relays=[])
    for r in (make_recording(1),
              make_recording(2, state="failed", thumbnail_age=None,
                             error="recording stopped: write failed: No space left on device")):
        fake.recordings[r.broadcast_id] = r
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["R", "down"])


@SIZES
def test_webhooks_screen(snap_compare: Snap, size: tuple[int, int]) -> None:
    """W: endpoints with their state; a failing one highlighted with its last error."""
    fake = FakeAdminClient(relays=[])
    for w in (make_webhook(1, events=["broadcast.live", "broadcast.ended"]),
              make_webhook(2, url="http://127.0.0.1:9000/hook", state=WebhookState.FAILING,
                           last_status=None, consecutive_failures=4, pending=3, dropped=2,
                           last_success_at=T0 - 3000,
                           last_error="ClientConnectorError: Cannot connect to host "
                                      "127.0.0.1:9000")):
        fake.webhooks[w.id] = w
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["W", "down"])


@SIZES
def test_analytics_screen(snap_compare: Snap, size: tuple[int, int]) -> None:
    """a: the selected channel's latest broadcast: viewers per minute, peak, unique viewers,
    watch time, chat, the player-kind and device split, the channel's 30 days."""
    fake = one_live()
    cid = next(iter(fake.streams))
    fake.analytics["b00000000001"] = make_analytics(cid, "b00000000001")
    fake.analytics["b00000000002"] = make_analytics(cid, "b00000000002", started_at=T0 - 90_000)
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["a"])


@SIZES
def test_nostr_signer_screen(snap_compare: Snap, size: tuple[int, int]) -> None:
    """N: identities and an unreachable remote signer with the event waiting for it."""
    fake = FakeAdminClient(relays=[])
    fake.signer.update(state="unreachable", last_error="no answer to sign_event within 15 s",
                       waiting={"s1": "no answer to sign_event within 15 s"})
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["N"])


@SIZES
def test_nostr_connect_qr(snap_compare: Snap, size: tuple[int, int]) -> None:
    """N then c: the nostrconnect:// URI and its QR code (the screen scrolls at 80×24)."""
    fake = FakeAdminClient(relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["N", "c"])


@SIZES
def test_lift_blocks_confirmation(snap_compare: Snap, size: tuple[int, int]) -> None:
    """b: the addresses blocked for wrong keys, and a confirmation before lifting them."""
    fake = FakeAdminClient(relays=[])
    fake.blocks = [AddressBlock(address="203.0.113.9", since=0.0, until=900.0, failures=5),
                   AddressBlock(address="198.51.100.7", since=0.0, until=900.0, failures=6)]
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["b"])


@SIZES
def test_plan_form(snap_compare: Snap, size: tuple[int, int]) -> None:
    """p: plan a broadcast of the selected channel; title and a default start filled in."""
    fake = one_live()
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["p"])


@SIZES
def test_goal_form(snap_compare: Snap, size: tuple[int, int]) -> None:
    """g: the selected channel's zap goal (NIP-75): its current progress, then the new goal
    being typed; a sats value the appliance refused is shown under its field."""
    fake = one_live()
    sid = next(iter(fake.streams))
    fake.goals[sid] = StreamGoal("ab" * 32, "Guitar strings", 2_000_000, 150_000)
    fake.errors["set_goal"] = ApplianceError("amount_sats must be a positive number of sats",
                                             field="amount_sats", status=400)
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake),
                        press=["g", "ctrl+u", *"New mic", "tab", "ctrl+u", *"5000", "ctrl+s"])


@SIZES
def test_channels_live_planned_and_off_air(snap_compare: Snap, size: tuple[int, int]) -> None:
    """The channels table says live, planned (with the next broadcast under the graph) or
    off air: channels do not end, their broadcasts do."""
    from dataclasses import replace

    from tui.testing import make_stream

    planned = replace(make_stream(2, status="ended", title="Album nights"),
                      next_planned_title="Kind of Blue, side A", next_planned_at=T0 + 86400)
    fake = FakeAdminClient([planned, make_stream(1, viewers=4, title="Friday jazz"),
                            make_stream(3, status="ended", title="Rehearsals")], relays=[])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake), press=["down"])


@SIZES
def test_whip_publisher(snap_compare: Snap, size: tuple[int, int]) -> None:
    """A channel published from a browser over WHIP: the caption says so (at 80 columns the
    protocol still shows; the address is cut first)."""
    fake = FakeAdminClient([make_stream(1, viewers=4, title="Studio camera", protocol="whip")])
    assert snap_compare(DashboardApp(fake, clock=clock), terminal_size=size,
                        run_before=settled(fake))
