"""install.sh --domain (HTTPS through Caddy): argument checks and the Caddyfile it writes.

The end-to-end check (that Caddyfile serving a real Hearth, curl and Chromium through it) is
tests/integration/test_https.py; the systemd parts need a booted systemd and are exercised by
hand (docs/deployment.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL_SH = REPO / "install.sh"
CADDY = shutil.which("caddy")


def _install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL_SH), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60, check=False)


@pytest.mark.parametrize("domain", ["", "bad domain", "-x.org", "a..b", "x.org/evil",
                                    "x.org;rm -rf /", "x" * 300, "x.org:99999999",
                                    "$(id)", "x.org\nfoo"])
def test_bad_domain_is_refused(domain: str) -> None:
    r = _install("--domain", domain, "--print-caddyfile")
    assert r.returncode != 0 and "--domain needs a DNS name" in r.stderr
    assert r.stdout == ""


def test_domain_needs_a_system_install() -> None:
    r = _install("--user", "--domain", "live.example.org", "--no-start")
    assert r.returncode != 0 and "needs a system install" in r.stderr


def test_help_documents_domain() -> None:
    assert "--domain NAME" in _install("--help").stdout


def test_caddyfile_proxies_to_loopback_and_streams_responses(tmp_path: Path) -> None:
    r = _install("--domain", "live.example.org", "--print-caddyfile",
                 env={"HEARTH_HTTP_PORT": "8081"})
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "live.example.org {" in text
    assert "reverse_proxy 127.0.0.1:8081 {" in text
    assert "flush_interval -1" in text and "@" not in text.replace("# ", "")
    if CADDY is None:
        pytest.skip("caddy not installed: syntax not checked")
    conf = tmp_path / "Caddyfile"
    conf.write_text(text)
    adapted = subprocess.run([CADDY, "adapt", "--config", str(conf), "--adapter", "caddyfile"],
                             capture_output=True, text=True, timeout=30, check=False,
                             env={**os.environ, "HOME": str(tmp_path)})
    assert adapted.returncode == 0, adapted.stderr
    assert '"live.example.org"' in adapted.stdout and "127.0.0.1:8081" in adapted.stdout
