"""Nostr signing/verification throughput and EVENT→OK latency against a local nostr-relay.

Usage: python bench/nostr_sign.py [--events 1000] [--relay-url ws://…]
Without --relay-url a ``nostr-relay`` process is started on a free loopback port (its venv
is created on first use, like the test fixture). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay_client import nip44
from relay_client.event import NostrEvent, UnsignedEvent
from relay_client.live import activity_address, build_chat_message
from relay_client.messages import EventMessage, parse_relay_message
from relay_client.pool import PoolConfig, RelayPool
from relay_client.session import EventReceived, RelaySession, Subscription
from relay_client.signing import PrivateKeySigner

logger = logging.getLogger("bench.nostr_sign")


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def bench_crypto(n: int) -> None:
    signer = PrivateKeySigner.generate()
    addr = activity_address(signer.public_key, "bench")
    unsigned = [
        build_chat_message(addr, f"message {i} " + "x" * 80, created_at=i) for i in range(n)
    ]
    t0 = time.perf_counter()
    events = [signer.sign_event(u) for u in unsigned]
    sign_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for ev in events:
        ev.check()
    verify_us = (time.perf_counter() - t0) / n * 1e6
    frames = [json.dumps(["EVENT", "s", ev.to_dict()], ensure_ascii=False) for ev in events]
    t0 = time.perf_counter()
    for frame in frames:
        msg = parse_relay_message(frame)
        assert isinstance(msg, EventMessage)
        msg.event.check()
    per_event = (time.perf_counter() - t0) / n
    # The same frames through the sans-IO RelaySession (subscription, window, filter, dedup,
    # id + BIP-340), as the pool's connections process them.
    session = RelaySession("ws://bench", clock=lambda: float(n + 10))
    session.subscribe(Subscription("s", ({"kinds": [1311]},)))
    session.connection_made()
    t0 = time.perf_counter()
    for frame in frames:
        session.receive_frame(frame)
    received = sum(isinstance(e, EventReceived) for e in session.events())
    session_us = (time.perf_counter() - t0) / n * 1e6
    assert received == n
    key = nip44.conversation_key(bytes.fromhex(signer.secret_hex),
                                 bytes.fromhex(PrivateKeySigner.generate().public_key))
    text = json.dumps(events[0].to_dict())
    t0 = time.perf_counter()
    payloads = [nip44.encrypt(text, key) for _ in range(n)]
    enc_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for pl in payloads:
        nip44.decrypt(pl, key)
    dec_us = (time.perf_counter() - t0) / n * 1e6
    _out(f"sign (id + BIP-340), per event:        {sign_us:8.1f} us")
    _out(f"verify (id recompute + BIP-340):       {verify_us:8.1f} us")
    _out(
        f"inbound frame parse+validate+verify:   {per_event * 1e6:8.1f} us "
        f"= {1 / per_event:,.0f} verified events/s (one core)"
    )
    _out(f"RelaySession.receive_frame (all checks): {session_us:8.1f} us")
    _out(f"NIP-44 v2 encrypt / decrypt ({len(text)} B):  {enc_us:6.1f} / {dec_us:6.1f} us")


async def bench_relay(url: str, n: int) -> None:
    signer = PrivateKeySigner.generate()
    latencies: list[float] = []
    cfg = PoolConfig(publish_timeout=10)
    async with RelayPool([url], config=cfg) as pool:
        await pool.wait_connected(timeout=10)
        now = int(time.time())
        for i in range(n):
            ev: NostrEvent = signer.sign_event(UnsignedEvent(
                kind=1, content=f"bench {i}", tags=(), created_at=now
            ))
            t0 = time.perf_counter()
            result = await pool.publish(ev)
            latencies.append(time.perf_counter() - t0)
            if not result.accepted:
                _out(f"publish {i} not accepted: {result.results}")
    latencies.sort()
    p50 = statistics.median(latencies) * 1e3
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1e3
    _out(f"EVENT->OK over {n} sequential publishes ({url}):")
    _out(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {latencies[-1] * 1e3:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--crypto-events", type=int, default=5000)
    parser.add_argument("--relay-url")
    args = parser.parse_args()
    bench_crypto(args.crypto_events)
    if args.relay_url:
        asyncio.run(bench_relay(args.relay_url, args.events))
        return
    from tests.relay_client.conftest import RelayProcess, nostr_relay_venv

    with tempfile.TemporaryDirectory() as tmp:
        relay = RelayProcess(nostr_relay_venv(), Path(tmp))
        relay.start()
        try:
            asyncio.run(bench_relay(relay.url, args.events))
        finally:
            relay.stop()


if __name__ == "__main__":
    main()
