"""answer_with_gathering: the answer step WHIP and WHEP share (port range, public address,
guards, and its two error types), against a real aiortc offerer."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media.webrtc.gathering import (
    AnswerFailed,
    NoUdpPort,
    OfferNotAnswerable,
    answer_with_gathering,
)
from media.webrtc.guard import DatagramGuard


async def _answerer() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    offerer.addTransceiver("video", direction="sendonly")
    await offerer.setLocalDescription(await offerer.createOffer())
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    await answerer.setRemoteDescription(RTCSessionDescription(
        sdp=offerer.localDescription.sdp, type="offer"))
    return offerer, answerer


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_answer_gathers_in_the_range_on_the_public_address_and_guards() -> None:
    async def run() -> None:
        offerer, answerer = await _answerer()
        port = _free_udp_port()
        try:
            guards = await answer_with_gathering(answerer, port_min=port, port_max=port,
                                                 public_ip="127.0.0.1")
            candidates = _candidates(answerer.localDescription.sdp)
            assert candidates, answerer.localDescription.sdp
            assert all(f" 127.0.0.1 {port} typ host" in c for c in candidates), candidates
            assert len(guards) == 1 and isinstance(guards[0], DatagramGuard)
        finally:
            await answerer.close()
            await offerer.close()

    asyncio.run(run())


def test_a_taken_range_is_no_udp_port() -> None:
    async def run() -> None:
        offerer, answerer = await _answerer()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            try:
                with pytest.raises(NoUdpPort) as caught:
                    await answer_with_gathering(answerer, port_min=port, port_max=port,
                                                public_ip="127.0.0.1")
                assert "UDP" in str(caught.value)
            finally:
                await answerer.close()
                await offerer.close()

    asyncio.run(run())


def test_an_unanswerable_state_is_offer_not_answerable() -> None:
    async def run() -> None:
        offerer, answerer = await _answerer()
        await answerer.close()
        try:
            with pytest.raises(OfferNotAnswerable) as caught:
                await answer_with_gathering(answerer)
            assert isinstance(caught.value, AnswerFailed)
            assert not isinstance(caught.value, NoUdpPort)
        finally:
            await offerer.close()

    asyncio.run(run())
