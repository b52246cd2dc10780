"""The operator's NIP-46 remote signer end to end: a nostr-tools bunker (node) signs Hearth's
30311 and operator chat over a real relay; the bunker goes down (events wait, the operator sees
why) and comes back (they go out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay_client.signing import PrivateKeySigner
from tests.helpers.appliance import ApplianceProcess, short_tmpdir
from tests.nostr_fixtures import (  # noqa: F401 - fixtures
    Bunker,
    RelayProcess,
    node_run,
    nostr_relay,
    nostr_tools_dir,
    relay_query,
)

USER_SK = "0000000000000000000000000000000000000000000000000000000000000003"
BUNKER_SK = "c90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b14e5c7"
OPERATOR = PrivateKeySigner(bytes.fromhex(USER_SK)).public_key
BUNKER_PK = PrivateKeySigner(bytes.fromhex(BUNKER_SK)).public_key

_VERIFY = r"""
const { verifyEvent } = require('nostr-tools/pure');
const events = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(events.map(e => verifyEvent(e))));
"""


def _status(ev: dict[str, Any]) -> str | None:
    return next((t[1] for t in ev["tags"] if t[0] == "status"), None)


def _latest(relay: RelayProcess, kind: int, **flt: Any) -> dict[str, Any] | None:
    events = relay_query(relay.url, {"kinds": [kind], "authors": [OPERATOR], **flt})
    return max(events, key=lambda e: e["created_at"]) if events else None


@pytest.mark.slow
def test_bunker_signs_live_events_and_chat_then_down_and_back(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    bunker = Bunker(nostr_tools_dir, nostr_relay.url, USER_SK, BUNKER_SK, secret="s3")
    bunker.start()
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": nostr_relay.url, "HEARTH_NOSTR_OPERATOR_PUBKEY": OPERATOR,
        "HEARTH_NOSTR_SIGNER_TIMEOUT": "3"}).start()
    try:
        out = app.cli("nostr", "connect", f"bunker://{BUNKER_PK}?relay={nostr_relay.url}"
                      "&secret=s3").stdout
        assert OPERATOR in out
        info = app.cli_json("nostr", "show")
        assert info["signing_as"] == "remote" and info["activity_pubkey"] == OPERATOR
        assert info["signer"]["state"] == "connected"
        assert "s3" not in str(info)  # the pairing secret is never shown
        sid = app.create_stream("Signed remotely")["id"]
        planned = app.wait_for(lambda: _latest(nostr_relay, 30311, **{"#d": [sid]}))
        assert _status(planned) == "planned"
        assert ["p", OPERATOR, "", "host"] in planned["tags"]
        app.cli("chat", "send", sid, "hello from the operator")
        chat = app.wait_for(lambda: _latest(nostr_relay, 1311))
        assert chat["content"] == "hello from the operator"
        assert node_run(nostr_tools_dir, _VERIFY, [planned, chat]) == [True, True]

        bunker.stop()
        app.cli("stream", "end", sid)
        waiting = app.wait_for(lambda: (s := app.cli_json("nostr", "show")["signer"])
                               ["waiting"] and s, timeout=20)
        assert waiting["state"] == "unreachable" and "no answer" in waiting["last_error"]
        assert "no answer" in waiting["waiting"][sid]
        assert "waiting: live event of" in app.cli("nostr", "show").stdout
        failed = app.cli("chat", "send", sid, "while down", check=False)
        assert failed.returncode == 1 and "cannot sign now" in failed.stderr
        assert _status(_latest(nostr_relay, 30311, **{"#d": [sid]}) or {}) == "planned"

        bunker.start()
        ended = app.wait_for(lambda: (e := _latest(nostr_relay, 30311, **{"#d": [sid]}))
                             and _status(e) == "ended" and e, timeout=40)
        assert node_run(nostr_tools_dir, _VERIFY, [ended]) == [True]
        assert app.wait_for(lambda: not app.cli_json("nostr", "show")["signer"]["waiting"])
    finally:
        app.stop()
        bunker.stop()


@pytest.mark.slow
def test_bunker_for_another_operator_is_refused(
        nostr_relay: RelayProcess, nostr_tools_dir: Path) -> None:  # noqa: F811
    bunker = Bunker(nostr_tools_dir, nostr_relay.url, USER_SK, BUNKER_SK)
    bunker.start()
    app = ApplianceProcess(short_tmpdir(), env_overrides={
        "HEARTH_NOSTR_RELAYS": nostr_relay.url,
        "HEARTH_NOSTR_OPERATOR_PUBKEY": "ab" * 32, "HEARTH_NOSTR_SIGNER_TIMEOUT": "3"}).start()
    try:
        res = app.cli("nostr", "connect", f"bunker://{BUNKER_PK}?relay={nostr_relay.url}",
                      check=False)
        assert res.returncode == 1 and "another pubkey" in res.stderr
        assert app.cli_json("nostr", "show")["signer"]["state"] == "none"
        bad = app.cli("nostr", "connect", "bunker://nope", check=False)
        assert bad.returncode == 1 and "bunker" in bad.stderr
    finally:
        app.stop()
        bunker.stop()
