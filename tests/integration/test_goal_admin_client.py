"""The typed admin client's zap-goal methods (the TUI's ``g`` dialog, issue 13) against a
real appliance and a real relay: the goal is read back typed, and each refusal names the
field the dialog shows it under."""

from __future__ import annotations

import asyncio

import pytest

from appliance.api.admin_client import ApplianceError, UnixSocketAdminClient
from appliance.api.schema import StreamGoal
from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.nostr_fixtures import (  # noqa: F401 - fixtures
    RelayProcess,
    nostr_relay,
    relay_query,
)


@pytest.mark.slow
def test_goal_set_and_read_through_the_typed_client(nostr_relay: RelayProcess) -> None:  # noqa: F811
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": nostr_relay.url}).start()
    try:
        sid = app.create_stream("Goal")["id"]

        async def go() -> tuple[StreamGoal | None, StreamGoal, StreamGoal | None,
                                list[ApplianceError]]:
            async with UnixSocketAdminClient(app.data_dir / "admin.sock") as client:
                before = await client.get_goal(sid)
                goal = await client.set_goal(sid, 1000, "New mic")
                after = await client.get_goal(sid)
                refusals = []
                for sats, title in ((0, "x"), (10, " "), (10, "x" * 201)):
                    with pytest.raises(ApplianceError) as err:
                        await client.set_goal(sid, sats, title)
                    refusals.append(err.value)
                return before, goal, after, refusals

        before, goal, after, refusals = asyncio.run(go())
        assert before is None
        assert (goal.title, goal.amount_msats, goal.progress_msats) == ("New mic", 1_000_000, 0)
        assert after == goal
        assert [(e.status, e.field) for e in refusals] == [
            (400, "amount_sats"), (400, "title"), (400, "title")]
        ev = app.wait_for(lambda: relay_query(nostr_relay.url, {"kinds": [9041]}))
        assert [e["id"] for e in ev] == [goal.event_id]
    finally:
        app.stop()
