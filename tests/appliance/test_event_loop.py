"""The ``event_loop`` option: what each value runs on, and a clear error when it cannot."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
import uvloop

from appliance import event_loop
from appliance.config import ConfigError, load_config


def test_auto_is_uvloop_when_installed_and_each_choice_makes_its_loop() -> None:
    assert event_loop.resolve("auto") == "uvloop"
    for choice, kind in (("auto", uvloop.Loop), ("uvloop", uvloop.Loop),
                         ("asyncio", asyncio.BaseEventLoop)):
        loop = event_loop.loop_factory(choice)()
        try:
            assert isinstance(loop, kind), choice
        finally:
            loop.close()
    loop = event_loop.loop_factory("asyncio")()
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "uvloop" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert event_loop.resolve("auto") == "asyncio"
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        event_loop.loop_factory("uvloop")


def test_an_unknown_loop_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="event_loop"):
        load_config(None, environ={"HEARTH_EVENT_LOOP": "trio"})
    assert load_config(None, environ={"HEARTH_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
