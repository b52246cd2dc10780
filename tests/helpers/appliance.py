"""Run the real ``hearth serve`` in a subprocess on loopback, and drive it like a user."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short_tmpdir() -> Path:
    """A directory whose paths fit in the 108-byte Unix socket limit."""
    return Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))


@dataclass
class HttpResult:
    status: int
    body: bytes
    headers: dict[str, str]
    url: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_get(url: str, *, follow: bool = True, timeout: float = 5.0,
             headers: dict[str, str] | None = None, method: str = "GET",
             data: bytes | None = None) -> HttpResult:
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(
        _NoRedirect)
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.read(), dict(resp.headers), resp.url)
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, err.read(), dict(err.headers), url)


@dataclass
class ApplianceProcess:
    """A running ``hearth serve`` subprocess with its own data dir and ports."""

    data_dir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    rtmp_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def rtmp_base(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env.update({
            "HEARTH_RTMP_AUTH_FAILURE_DELAY": "0.1",
            "HEARTH_RTMP_GRACE_SECONDS": "4",
            # Tests publish from 127.0.0.1 in quick succession; tests/integration/test_hostile.py
            # sets the product default back.
            "HEARTH_RTMP_CONNECTS_PER_IP_PER_SECOND": "50",
            "HEARTH_LOG_LEVEL": "DEBUG",
            "PYTHONASYNCIODEBUG": "1",
        })
        env.update(self.env_overrides)
        return env

    def start(self, timeout: float = 15.0) -> ApplianceProcess:
        self.log_path = self.data_dir / f"serve-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")  # owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--data-dir", str(self.data_dir),
             "--http", f"127.0.0.1:{self.http_port}", "--rtmp", f"127.0.0.1:{self.rtmp_port}",
             # Nostr tests pass HEARTH_NOSTR_RELAYS; everything else runs relay-less.
             *([] if "HEARTH_NOSTR_RELAYS" in self.env_overrides else ["--no-relays"])],
            stdout=log, stderr=subprocess.STDOUT, env=self.env(),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hearth serve exited {self.proc.returncode}:\n{self.log()}")
            try:
                if http_get(self.base + "/healthz", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"hearth serve did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "appliance", *args, "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, env=self.env(), timeout=30,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"hearth {' '.join(args)} failed: {result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def create_stream(self, title: str = "Test stream", *extra: str) -> dict[str, Any]:
        created: dict[str, Any] = self.cli_json("stream", "create", "--title", title, *extra)
        return created

    def get(self, path: str, **kw: Any) -> HttpResult:
        return http_get(self.base + path, **kw)

    def wait_for(self, predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(
            f"condition not met in {timeout} s (last {last!r})\n{self.log()[-4000:]}")

    def playlist(self, stream_id: str) -> str | None:
        """Fetch the media playlist as a player would (through the multivariant playlist)."""
        r = self.get(f"/hls/{stream_id}/index.m3u8")
        if r.status != 200 or "media.m3u8" not in r.text:
            return None
        r = self.get(f"/hls/{stream_id}/media.m3u8")
        return r.text if r.status == 200 else None
