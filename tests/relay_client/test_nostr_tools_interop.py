"""Independent check of our ids and signatures with nostr-tools (``verifyEvent``) in node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.live import activity_address, build_chat_message, build_live_event
from relay_client.signing import PrivateKeySigner
from tests.relay_client.conftest import cache_dir

NOSTR_TOOLS = "nostr-tools@2.25.2"

_SCRIPT = r"""
const { verifyEvent, getEventHash } = require('nostr-tools/pure');
const events = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = events.map(e => ({ ok: verifyEvent(e), hash: getEventHash(e) }));
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def nostr_tools_dir() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: cannot cross-check with nostr-tools")
    path = cache_dir() / "nostr-tools-2.25.2"
    if not (path / "node_modules" / "nostr-tools" / "package.json").exists():
        path.mkdir(parents=True, exist_ok=True)
        (path / "package.json").write_text('{"name":"hearth-nostr-tools-check","private":true}')
        try:
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", NOSTR_TOOLS],
                cwd=path,
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            reason = f"npm install {NOSTR_TOOLS} failed: {exc}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    return path


def test_nostr_tools_verifies_our_events(
    nostr_tools_dir: Path, alice: PrivateKeySigner, bob: PrivateKeySigner
) -> None:
    addr = activity_address(alice.public_key, "s1")
    events: list[NostrEvent] = [
        alice.sign_event(build_live_event(
            d="s1",
            title="Tïtle ☃ 🎥",
            status="live",
            streaming=["https://h/live.m3u8"],
            host_pubkey=bob.public_key,
            created_at=1_700_000_000,
        )),
        bob.sign_event(build_chat_message(
            addr, 'all escapes: \n " \\ \r \t \b \f and \x00\x01\x1f\x7f \u2028', created_at=1
        )),
        alice.sign_event(UnsignedEvent(kind=1, content="", tags=(("t", ""),), created_at=0)),
        bob.sign_event(UnsignedEvent(kind=65535, content="x" * 5000, tags=(),
                                     created_at=2**53 - 1)),
    ]
    forged = NostrEvent.from_dict({**events[0].to_dict(), "sig": events[2].sig})
    payload = json.dumps([e.to_dict() for e in [*events, forged]], ensure_ascii=False)
    proc = subprocess.run(
        ["node", "-e", _SCRIPT],
        cwd=nostr_tools_dir,
        input=payload.encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    results = json.loads(proc.stdout)
    assert [r["hash"] for r in results] == [e.id for e in [*events, forged]]
    assert [r["ok"] for r in results] == [True, True, True, True, False]
