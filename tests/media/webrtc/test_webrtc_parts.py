"""media.webrtc: the stray-datagram guard, encoded tracks and AAC → Opus."""

from __future__ import annotations

import asyncio
import itertools
from fractions import Fraction
from typing import Any

import av
import numpy as np

from media.aac import parse_asc
from media.units import CLOCK_RATE, MediaUnit, TrackKind
from media.webrtc.guard import MAX_QUEUED_DATAGRAMS, guard_connection, looks_like_stun
from media.webrtc.opus import AacToOpus

STUN = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12


class FakePair:
    def __init__(self, addr: tuple[str, int], state: Any = None) -> None:
        self.remote_addr = addr
        self.state = state


class FakeProtocol:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if data[0:1] == b"":  # what aiortc's DTLS transport does: data[0]
            raise IndexError("index out of range")
        self.got.append(data)


class FakeConnection:
    def __init__(self) -> None:
        self._protocols = [FakeProtocol()]
        self._nominated: dict[int, FakePair] = {}
        self._check_list: list[FakePair] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()


def test_stun_detection() -> None:
    """RFC 8489 §6: first two bits zero and the magic cookie."""
    assert looks_like_stun(STUN)
    assert not looks_like_stun(b"")
    assert not looks_like_stun(b"\x16\xfe\xfd" + b"\x00" * 30)
    assert not looks_like_stun(b"\x00\x01\x00\x00" + b"\x00" * 16)


def test_guard_drops_empty_and_stray_datagrams() -> None:
    """Regression (docs/threat-model.md §whep): an empty datagram never reaches aiortc."""
    conn = FakeConnection()
    guard = guard_connection(conn)  # type: ignore[arg-type]
    assert guard_connection(conn) is guard  # idempotent  # type: ignore[arg-type]
    proto = conn._protocols[0]
    proto.datagram_received(b"", ("1.2.3.4", 5))
    proto.datagram_received(b"\x16junk", ("1.2.3.4", 5))  # before nomination
    proto.datagram_received(STUN, ("1.2.3.4", 5))  # STUN always passes (aioice checks it)
    conn._nominated[1] = FakePair(("10.0.0.1", 4000))
    proto.datagram_received(b"\x16dtls", ("1.2.3.4", 5))  # not the nominated address
    proto.datagram_received(b"\x16dtls", ("10.0.0.1", 4000))
    proto.datagram_received(b"", ("10.0.0.1", 4000))  # empty even from the peer
    assert proto.got == [STUN, b"\x16dtls"]
    assert (guard.dropped_empty, guard.dropped_stray) == (2, 2)


def test_guard_passes_any_validated_pair_not_only_the_nominated_one() -> None:
    """A peer may send DTLS over its own valid pair (werift: IPv4 while we nominated IPv6)."""
    from aioice.ice import CandidatePair

    conn = FakeConnection()
    guard = guard_connection(conn)  # type: ignore[arg-type]
    proto = conn._protocols[0]
    conn._nominated[1] = FakePair(("fd00::2", 4000))
    conn._check_list = [FakePair(("10.0.0.1", 4001), CandidatePair.State.IN_PROGRESS),
                        FakePair(("10.0.0.9", 4002), CandidatePair.State.FAILED)]
    proto.datagram_received(b"\x16dtls", ("10.0.0.1", 4001))
    proto.datagram_received(b"\x16dtls", ("10.0.0.9", 4002))  # its check failed: stray
    proto.datagram_received(b"\x16dtls", ("10.0.0.1", 9999))  # other port: stray
    assert proto.got == [b"\x16dtls"]
    assert guard.dropped_stray == 2


def test_guard_bounds_the_receive_queue() -> None:
    conn = FakeConnection()
    guard = guard_connection(conn)  # type: ignore[arg-type]
    conn._nominated[1] = FakePair(("10.0.0.1", 4000))
    for _ in range(MAX_QUEUED_DATAGRAMS):
        conn._queue.put_nowait(b"x")
    conn._protocols[0].datagram_received(b"\x80rtp", ("10.0.0.1", 4000))
    assert guard.dropped_flood == 1


def _aac_units(seconds: float) -> tuple[bytes, list[MediaUnit]]:
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = 44100, "mono", "fltp"  # type: ignore[attr-defined]
    enc.open()
    units: list[MediaUnit] = []
    t = np.arange(1024, dtype=np.float32)
    for i in range(int(seconds * 44100 / 1024)):
        frame = av.AudioFrame.from_ndarray(
            (0.3 * np.sin(2 * np.pi * 440 * (t + i * 1024) / 44100)).reshape(1, -1),
            format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 44100, i * 1024, Fraction(1, 44100)
        for p in enc.encode(frame):
            dts = int(p.pts) * CLOCK_RATE // 44100
            units.append(MediaUnit(TrackKind.AUDIO, dts, dts, True, bytes(p), 0.0))
    return bytes(enc.extradata or b""), units


def test_aac_to_opus_decodes_with_pyav() -> None:
    """AAC 44.1 kHz mono → 20 ms Opus frames at 48 kHz whose timestamps follow the input."""
    asc, units = _aac_units(2.0)
    tx = AacToOpus(parse_asc(asc))
    packets = tx.transcode(units[:40]) + tx.transcode(units[40:])
    assert len(packets) >= 80
    assert all(p.time_base == Fraction(1, 48000) for p in packets)
    pts = [p.pts for p in packets]
    assert all(b - a == 960 for a, b in itertools.pairwise(pts))
    dec = av.CodecContext.create("opus", "r")
    samples = sum(f.samples for p in packets for f in dec.decode(p))
    assert samples >= 80 * 960
    assert tx.transcode([MediaUnit(TrackKind.AUDIO, 0, 0, True, b"\xff\xff", 0.0)]) == [] \
        or tx.errors >= 0
