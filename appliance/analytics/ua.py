"""Device class and a coarse browser bucket from a User-Agent, decided in memory.

Neither the User-Agent nor anything derived from it beyond :class:`DeviceClass` is stored
(docs/analytics.md). The tables are ordered: the first matching rule wins, so a Smart-TV
browser that also says "Linux" is a TV, an Android tablet (no "Mobile" token, the convention
Google documents for Android UAs) is a tablet, and a crawler that pretends to be Chrome but
names itself ("Googlebot", "HeadlessChrome") is a bot. iPadOS 13+ Safari sends a desktop
(Macintosh) UA by design and is therefore counted as desktop.
"""

from __future__ import annotations

import re

from appliance.api.schema import DeviceClass

MAX_UA = 256
"""Characters of a User-Agent looked at (the rest is ignored: bounded regex work)."""

_RULES: tuple[tuple[DeviceClass, re.Pattern[str]], ...] = (
    (DeviceClass.BOT, re.compile(
        r"bot\b|bot/|crawl|spider|slurp|scrap|headless|phantomjs|curl/|wget/|python|aiohttp|"
        r"go-http-client|java/|okhttp|libwww|httpclient|facebookexternalhit|preview|"
        r"monitor|uptime|lighthouse|ahrefs|semrush|bingpreview|feedfetcher")),
    (DeviceClass.TV, re.compile(
        r"smart-?tv|googletv|google tv|android tv|appletv|apple tv|tvos|hbbtv|netcast|"
        r"web0s|webos.*tv|tizen.*tv|roku|\baft[a-z]|crkey|bravia|aquos|viera|playstation|"
        r"xbox|nintendo|\btv\b")),
    (DeviceClass.TABLET, re.compile(
        r"ipad|tablet|kindle|silk/|playbook|\bsm-t\d|android(?!.*mobile)")),
    (DeviceClass.MOBILE, re.compile(
        r"iphone|ipod|android.*mobile|mobile|windows phone|blackberry|\bbb10\b|opera mini|"
        r"iemobile")),
    (DeviceClass.DESKTOP, re.compile(
        r"windows nt|macintosh|mac os x|x11|linux x86_64|linux i686|\bcros\b")),
)

_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("edge", re.compile(r"edg/|edge/")),
    ("opera", re.compile(r"opr/|opera")),
    ("firefox", re.compile(r"firefox/")),
    ("chrome", re.compile(r"chrome/|crios/|chromium/")),
    ("safari", re.compile(r"safari/")),
    ("vlc", re.compile(r"vlc|libvlc")),
    ("ffmpeg", re.compile(r"lavf/")),
    ("gstreamer", re.compile(r"gstreamer")),
    ("mpv", re.compile(r"mpv")),
)


def device_class(user_agent: str) -> DeviceClass:
    """The device class of a User-Agent string (anything, including empty or hostile)."""
    ua = user_agent[:MAX_UA].lower()
    for device, pattern in _RULES:
        if pattern.search(ua):
            return device
    return DeviceClass.OTHER


def ua_bucket(user_agent: str, device: DeviceClass | None = None) -> str:
    """A coarse bucket (device class + client family) that, with the address, keys a viewer:
    two browsers on one computer are two viewers, a browser update is not a new one."""
    ua = user_agent[:MAX_UA].lower()
    family = next((name for name, pattern in _FAMILIES if pattern.search(ua)), "other")
    return f"{(device or device_class(user_agent)).value}/{family}"
