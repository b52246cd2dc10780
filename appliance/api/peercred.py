"""Who may use the admin socket: the peer-credential check (``SO_PEERCRED``, Linux).

The socket's file mode is the first gate (0600, or 0660 for an operators' group). This is the
second, made on every request from the kernel's record of the connecting process: its uid must
be the service's uid or root, or — only when the socket mode grants the group — its primary
or a supplementary group must be the socket's group (docs/threat-model.md
§admin-socket). A file mode loosened by hand, or a socket inherited through a shared
directory, therefore still admits nobody else.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["PeerPolicy", "peer_credentials", "peercred_middleware", "policy_for_socket"]

_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """Args: uid: the service's uid. gid: the group admitted, or None when the socket's mode
    does not grant its group access."""

    uid: int
    gid: int | None

    def allows(self, uid: int, gid: int, groups: frozenset[int]) -> bool:
        if uid == 0 or uid == self.uid:
            return True
        return self.gid is not None and (gid == self.gid or self.gid in groups)


def policy_for_socket(path: Path, uid: int | None = None) -> PeerPolicy:
    """The policy for the socket at ``path``: our uid, plus its group if mode grants it."""
    st = path.stat()
    group = st.st_gid if st.st_mode & 0o060 else None
    return PeerPolicy(uid=os.geteuid() if uid is None else uid, gid=group)


def peer_credentials(sock: Any) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end of a Unix socket, or None if the
    platform cannot tell."""
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size)
    except OSError:
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def _supplementary_groups(pid: int) -> frozenset[int]:
    # SO_PEERCRED carries only the primary group; /proc has the rest.
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return frozenset(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def peercred_middleware(policy: Callable[[], PeerPolicy]) -> Any:
    """aiohttp middleware refusing (403) peers the policy does not allow.

    Args:
        policy: returns the current policy (called per request: the socket may be re-created
            with another mode).
    """

    @web.middleware
    async def check_peer(request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        creds = peer_credentials(transport.get_extra_info("socket") if transport else None)
        if creds is not None:
            pid, uid, gid = creds
            rules = policy()
            groups = _supplementary_groups(pid) if rules.gid is not None else frozenset()
            if not rules.allows(uid, gid, groups):
                return web.json_response(
                    {"error": f"uid {uid} may not use the admin socket: run as the service "
                              "user, root, or a member of the socket's group"}, status=403)
        resp: web.StreamResponse = await handler(request)
        return resp

    return check_peer
