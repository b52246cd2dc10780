"""The installed ``hearth tui`` in a real terminal (tmux) against a running appliance."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.appliance import ApplianceProcess, http_get
from tests.helpers.publishers import FFMPEG, ffmpeg_publish

TMUX = shutil.which("tmux")
HEARTH = Path(sys.executable).parent / "hearth"  # the console script installed with the package

pytestmark = pytest.mark.skipif(FFMPEG is None or TMUX is None or not HEARTH.exists(),
                                reason="needs ffmpeg, tmux and the installed hearth script")


def _capture(session: str) -> str:
    return subprocess.run([TMUX, "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=False).stdout


def test_tui_shows_live_stream_viewers_and_chat(appliance: ApplianceProcess) -> None:
    """tmux + hearth tui: the stream is live with its viewer count, and chat appears."""
    created = appliance.create_stream("Tmux jam session")
    sid = created["id"]
    pub = ffmpeg_publish(f"{appliance.rtmp_base}/{created['stream_key']}", 40)
    session = f"hearth-e2e-{sid}"
    stop = threading.Event()

    def player() -> None:
        """One viewer: reloads the media playlist and fetches its newest segment (viewers are
        counted on media requests)."""
        appliance.wait_for(lambda: appliance.playlist(sid))
        while not stop.wait(1.0):
            text = appliance.playlist(sid) or ""
            segs = [x for x in text.splitlines() if x.startswith("seg-")]
            if segs:
                http_get(f"{appliance.base}/hls/{sid}/{segs[-1]}")

    viewer = threading.Thread(target=player, daemon=True)
    try:
        viewer.start()
        appliance.wait_for(lambda: appliance.get(f"/api/streams/{sid}").json()["viewers"] == 1)
        # Short enough not to wrap in the chat pane of an 80-column terminal (tmux may not
        # give the session the 120 columns asked for when other clients share the server).
        appliance.cli("chat", "send", sid, "hello tmux")
        env = " ".join(f"{k}={v}" for k, v in appliance.env().items()
                       if k.startswith("HEARTH_") and k != "HEARTH_LOG_LEVEL")
        subprocess.run(
            [TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "36",
             f"env {env} {HEARTH} tui --data-dir {appliance.data_dir}"],
            check=True)
        deadline = time.monotonic() + 30
        screen = ""
        while time.monotonic() < deadline:
            screen = _capture(session)
            if ("Tmux jam session" in screen and "live" in screen
                    and "hello tmux" in screen and "1/1" in screen):
                break
            time.sleep(0.5)
        assert "Tmux jam session" in screen, screen
        assert "live" in screen, screen
        assert "1/1" in screen, screen  # viewers now/peak
        assert "hello tmux" in screen, screen
        # The keyboard works: open the new-stream form and cancel it.
        subprocess.run([TMUX, "send-keys", "-t", session, "n"], check=True)
        time.sleep(1.5)
        assert "Title" in _capture(session)
        subprocess.run([TMUX, "send-keys", "-t", session, "Escape"], check=True)
        subprocess.run([TMUX, "send-keys", "-t", session, "q"], check=True)
        time.sleep(1.0)
    finally:
        stop.set()
        subprocess.run([TMUX, "kill-session", "-t", session], check=False,
                       capture_output=True)
        pub.kill()
        pub.wait(10)
