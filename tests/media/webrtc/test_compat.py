"""The aiortc/aioice internals Hearth relies on still exist with the shape it expects.

This is the test that fails on an incompatible aiortc/aioice upgrade (see
media/webrtc/compat.py and the pinned range in pyproject.toml).
"""

from __future__ import annotations

import socket

from aiortc import RTCPeerConnection, RTCSessionDescription

from media.webrtc import compat


async def test_internals_match() -> None:
    assert await compat.problems() == []


async def test_registered_profiles_let_aiortc_accept_a_high_only_offer() -> None:
    compat.register_h264_profiles()
    compat.register_h264_profiles()  # idempotent
    plids = [str(c.parameters.get("profile-level-id")) for c in
             __import__("aiortc").codecs.CODECS["video"] if c.mimeType == "video/H264"]
    assert len(plids) == len(set(plids)) and "64001f" in plids

    client = RTCPeerConnection()
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    offer = client.localDescription.sdp
    # Keep only High in the offer, as a High-only WHEP player would send it.
    offer = offer.replace("profile-level-id=42001f", "profile-level-id=64001f").replace(
        "profile-level-id=42e01f", "profile-level-id=640c1f")
    server = RTCPeerConnection()
    try:
        await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        (transceiver,) = server.getTransceivers()
        codecs = compat.video_codecs(transceiver)
        assert any(c.mimeType == "video/H264" for c in codecs)
        compat.set_video_codecs(transceiver, codecs[:1])
        assert compat.video_codecs(transceiver) == codecs[:1]
        assert len(compat.ice_connections(server)) == 1
    finally:
        await server.close()
        await client.close()


async def test_taken_over_sender_reports_its_route_and_sends_through_it() -> None:
    """Two aiortc peers over loopback: the server's sender, taken over, reports what was
    negotiated once DTLS is up, sends nothing itself, and a packet written through its
    route arrives at the client's SRTP layer; closing does not hang on the idle loops."""
    await _taken_over_sender_sends()


def test_under_uvloop_the_route_owns_a_duplicate_and_closes_it() -> None:
    """The same under uvloop (``event_loop = "auto"``'s choice when installed), whose
    transports hold no Python socket: the route sends on its own duplicate of the
    descriptor and closes it once dropped."""
    import asyncio
    import gc

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sock = runner.run(_taken_over_sender_sends())
    gc.collect()
    assert sock.fileno() == -1


async def test_transport_socket_of_a_closing_or_foreign_transport_is_none() -> None:
    import asyncio

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    found = compat.transport_socket(transport)
    assert found is not None and found[1] is False
    transport.close()
    assert compat.transport_socket(transport) is None
    assert compat.transport_socket(None) is None
    assert compat.transport_socket(_NoSocket()) is None


class _NoSocket:
    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> None:
        return None


async def _taken_over_sender_sends() -> socket.socket:
    """The route test's body; returns the socket the route sent on."""
    import asyncio

    from aiortc.rtcdtlstransport import RTCDtlsTransport

    from media.webrtc.fanout import Outbound, Sink
    from media.webrtc.tracks import SenderTrack

    got: list[bytes] = []
    original = RTCDtlsTransport._handle_rtp_data

    async def tap(self: object, data: bytes, arrival_time_ms: int) -> None:
        got.append(data)
        await original(self, data, arrival_time_ms)  # type: ignore[arg-type]

    RTCDtlsTransport._handle_rtp_data = tap  # type: ignore[method-assign]
    client, server = RTCPeerConnection(), RTCPeerConnection()
    started: list[compat.SendParameters] = []
    feedback: list[tuple[str, list[int]]] = []
    try:
        client.addTransceiver("video", direction="recvonly")
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(client.localDescription)
        sender = server.addTrack(SenderTrack("video"))
        compat.take_over_sender(sender, started.append,
                                lambda what, lost: feedback.append((what, lost)))
        await server.setLocalDescription(await server.createAnswer())
        assert compat.release_unused_receivers(server) == 1  # sendonly: never receives
        assert compat.release_unused_receivers(client) == 0  # recvonly: keeps its buffers
        await client.setRemoteDescription(server.localDescription)
        async with asyncio.timeout(20):
            while not started:
                await asyncio.sleep(0.02)
        (params,) = started
        assert params.kind == "video" and params.ssrc == sender._ssrc
        assert params.mid == "0" and params.cname
        assert params.payload_type in {c.payloadType for c in compat.video_codecs(
            server.getTransceivers()[0])}
        assert "urn:ietf:params:rtp-hdrext:sdes:mid" in params.extensions
        route = compat.media_route(sender)
        assert route is not None
        await asyncio.sleep(0.3)
        assert got == []  # aiortc's own loop sends nothing
        out = Outbound("video", 90000)
        out.attach(Sink(params, route, wait_for_keyframe=False))
        out.send([([b"\x65" + b"x" * 100], 9000, True)])
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.02)
        assert got[0][1] & 0x7F == params.payload_type and got[0].endswith(b"x" * 100)
        transport = route.pair.protocol.transport
        if isinstance(getattr(transport, "_sock", None), socket.socket):
            assert route.sock is transport._sock
        else:
            assert route.sock.fileno() != transport.get_extra_info("socket").fileno()
        return route.sock
    finally:
        RTCDtlsTransport._handle_rtp_data = original  # type: ignore[method-assign]
        async with asyncio.timeout(10):
            await server.close()
            await client.close()
