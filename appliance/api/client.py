"""Async client of the admin API over its Unix socket (used by the CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp


class AdminError(Exception):
    """The admin API could not be reached or answered with an error; the text is for users."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AdminClient:
    """``async with AdminClient(path) as c: await c.request("GET", "/v1/status")``."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        connector = aiohttp.UnixConnector(path=str(self.socket_path))
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      params: dict[str, str] | None = None) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(method, f"http://hearth{path}", json=body,
                                             params=params) as resp:
                text = await resp.text()
                data = json.loads(text) if text else None
                if resp.status >= 400:
                    message = data.get("error") if isinstance(data, dict) else text
                    raise AdminError(str(message), resp.status)
                return data
        except FileNotFoundError:
            raise AdminError(self._not_running()) from None
        except PermissionError:
            raise AdminError(
                f"permission denied on {self.socket_path}: run as the service user "
                "(sudo -u hearth hearth …) or as root") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PermissionError):
                raise AdminError(
                    f"permission denied on {self.socket_path}: run as the service user "
                    "(sudo -u hearth hearth …) or as root") from None
            raise AdminError(self._not_running()) from None
        except json.JSONDecodeError:
            raise AdminError("the admin API answered with something that is not JSON") from None

    def _not_running(self) -> str:
        return (f"Hearth is not running (no admin API at {self.socket_path}). Start it with "
                "`hearth serve` or `systemctl start hearth`, or pass --data-dir/--admin-socket.")
