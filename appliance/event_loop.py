"""The event loop ``hearth serve`` runs on (the ``event_loop`` option).

uvloop runs the same asyncio code on libuv: measured 7-13 % less CPU per ingest stream and
a fifth less per WebRTC packet sent (docs/architecture.md "Ingest hot path"), because the
loop's own work per wake-up (poll, handles, the transport's read) is in C. Everything
Hearth does is written against the asyncio interfaces both loops implement; the one place
that reaches under them, the WebRTC fan-out's socket, handles both (media/webrtc/compat.py
``transport_socket``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable

from appliance.config import ConfigError

__all__ = ["loop_factory", "resolve"]


def resolve(choice: str) -> str:
    """The loop ``choice`` means here: ``auto`` is uvloop when it is installed."""
    if choice == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    if choice == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError("event_loop", "uvloop is not installed (pip install uvloop)")
    return choice


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the loop for ``choice`` (for :class:`asyncio.Runner`)."""
    if resolve(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
