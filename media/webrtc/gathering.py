"""Host-candidate gathering for a server: a fixed UDP port range and an advertised address.

aioice binds one ephemeral port per local address and offers no port range. A server behind
a firewall or 1:1 NAT needs both, so :func:`configure_gathering` replaces the connection's
per-component gathering step (through :mod:`media.webrtc.compat`) with one that

* binds a free port in ``[port_min, port_max]`` (ephemeral when both are 0), and
* with ``public_ip``, advertises ``public_ip`` as the single host candidate (1:1 NAT, like
  MediaMTX ``webrtcAdditionalHosts``), bound on that address when it is local and on the
  wildcard address otherwise.

Only host candidates are gathered: a LAN appliance has no STUN/TURN servers.

:func:`answer_with_gathering` is the answer step WHIP ingest and WHEP egress share: it
configures every ICE connection of a peer this way, answers the offer (aiortc gathers during
``setLocalDescription``) and puts the stray-datagram guard in front of each connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from typing import TYPE_CHECKING

from aioice.candidate import Candidate, candidate_foundation, candidate_priority

from media.webrtc import compat
from media.webrtc.compat import Connection, StunProtocol, add_protocols, replace_gathering
from media.webrtc.guard import DatagramGuard, guard_connection

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

__all__ = ["AnswerFailed", "NoUdpPort", "OfferNotAnswerable", "PortRangeExhausted",
           "answer_with_gathering", "configure_gathering"]

RCVBUF = 1 << 20


class PortRangeExhausted(OSError):
    """Every port of the configured UDP range is in use."""


class AnswerFailed(Exception):
    """:func:`answer_with_gathering` could not answer; ``str()`` is the underlying reason."""


class NoUdpPort(AnswerFailed):
    """No UDP socket could be bound (any ``OSError`` while answering): the server is out of
    ports, not the offer's fault, so callers answer 503 (retry later)."""


class OfferNotAnswerable(AnswerFailed):
    """aiortc could not build an answer to this (already accepted) remote offer: callers
    answer 400."""


async def _bind(connection: Connection, address: str, port_min: int, port_max: int
                ) -> tuple[asyncio.DatagramTransport, StunProtocol]:
    loop = asyncio.get_running_loop()
    if port_min == 0:
        ports = [0]
    else:
        ports = list(range(port_min, port_max + 1))
        random.shuffle(ports)
    last: OSError | None = None
    for port in ports:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), local_addr=(address, port))
        except OSError as exc:
            last = exc
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        return transport, protocol
    raise PortRangeExhausted(f"no free UDP port in {port_min}-{port_max} on {address}: {last}")


def _is_local(address: str) -> bool:
    """Whether ``address`` is one of this host's (binding a UDP socket to it works)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def configure_gathering(connection: Connection, *, port_min: int = 0, port_max: int = 0,
                        public_ip: str = "") -> None:
    """Make ``connection`` gather host candidates in a port range / with a public address.

    Must be called before ``gather_candidates`` (i.e. before aiortc's setLocalDescription).
    """

    async def get_component_candidates(component: int, addresses: list[str],
                                       timeout: int = 5) -> list[Candidate]:
        if public_ip:
            # Bind the advertised address itself when it is local, so replies leave from it;
            # only an address that is not ours (real 1:1 NAT) needs the wildcard, where the
            # NAT gives replies the public source. A wildcard socket answering from another
            # local address fails the peer's checks ("source address mismatch", RFC 8445
            # §7.2.5.2.1) and, when that comes before the peer learns a peer-reflexive
            # pair, its whole ICE session (aiortc: "failed" while media flows).
            wildcard = "::" if ipaddress.ip_address(public_ip).version == 6 else "0.0.0.0"
            binds = [(public_ip, public_ip) if _is_local(public_ip) else (wildcard, public_ip)]
        else:
            binds = [(a, a) for a in addresses]
        candidates: list[Candidate] = []
        protocols: list[StunProtocol] = []
        for bind_addr, advertised in binds:
            try:
                transport, protocol = await _bind(connection, bind_addr, port_min, port_max)
            except OSError:
                continue
            port = transport.get_extra_info("sockname")[1]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", advertised),
                component=component, transport="udp",
                priority=candidate_priority(component, "host"),
                host=advertised, port=port, type="host")
            candidates.append(protocol.local_candidate)
            protocols.append(protocol)
        add_protocols(connection, protocols)
        if not candidates:
            raise PortRangeExhausted("could not bind any UDP socket for WebRTC")
        return candidates

    replace_gathering(connection, get_component_candidates)


async def answer_with_gathering(pc: RTCPeerConnection, *, port_min: int = 0, port_max: int = 0,
                                public_ip: str = "") -> list[DatagramGuard]:
    """Answer ``pc``'s remote offer, gathering host candidates as :func:`configure_gathering`.

    ``pc`` must have its remote description (and any tracks/codec preferences) set. Every
    distinct aioice connection of ``pc`` is configured before ``setLocalDescription``
    gathers, and after it a :class:`DatagramGuard` is put in front of each (returned, one
    per connection; the caller keeps them for its counters).

    Raises:
        NoUdpPort: binding failed (an ``OSError``, e.g. :class:`PortRangeExhausted`).
        OfferNotAnswerable: anything else ``createAnswer``/``setLocalDescription`` raised.
    """
    connections = compat.ice_connections(pc)
    for conn in connections:
        configure_gathering(conn, port_min=port_min, port_max=port_max, public_ip=public_ip)
    try:
        await pc.setLocalDescription(await pc.createAnswer())
    except OSError as exc:
        raise NoUdpPort(str(exc)) from exc
    except Exception as exc:
        raise OfferNotAnswerable(str(exc)) from exc
    return [guard_connection(conn) for conn in connections]
