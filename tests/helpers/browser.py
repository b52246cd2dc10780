"""Debian's Chromium driven by Playwright (no browser download: executable_path)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio",
]


@contextmanager
def chromium_page(extra_args: tuple[str, ...] = (), *,
                  ignore_https_errors: bool = False) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "chromium is required (scripts/install-test-deps.sh installs it)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=[*CHROMIUM_ARGS, *extra_args])
        try:
            page = browser.new_page(ignore_https_errors=ignore_https_errors)
            yield page
        finally:
            browser.close()
