"""B10: WebRTC (WHEP) fan-out cost: server CPU per RTP packet, viewers per core, RSS per peer.

Method. ``hearth serve`` with ``HEARTH_WEBRTC_ENABLED=1`` on loopback; one publish of the
bench source (``make_source()``: 720p30, 3 Mbit/s, AAC) looped with ``ffmpeg -re -c copy``.
First the idle cost of the stream (ingest, LL-HLS, the once-per-stream AAC → Opus) is sampled
with no peer. Then, for each N (default 10, 25, 50), ``--procs`` client processes (fork) each
open N/procs aiortc ``RTCPeerConnection``s (recvonly video + audio) and negotiate over WHEP
(``POST /whep/{id}``), at most 4 negotiations in flight per process. The clients *receive but
do not decrypt*: aioice's ``Connection.data_received`` is replaced in the client processes by
one that counts SRTP datagrams (RFC 7983 first byte 128–191, RTCP payload types excluded) per
ICE connection and drops them; STUN and DTLS go on to aiortc as usual. So each client costs
little more than a ``recvfrom`` per packet and one client core keeps up with 100+ viewers
(with SRTP unprotect and RTP parsing in the clients, ~1/3 of the server's former per-packet
cost, the clients saturated their core near 50 viewers and the counts understated what the
server sent). No jitter buffer, no decoding, no RTCP receiver reports or NACKs. Once every
peer has received media, after a 2 s settle, the server's CPU (``CpuSampler``) and the RTP
packets the clients received are counted over ``--window`` seconds; the server's RSS is read
at the end. The peers are closed (WHEP DELETE + pc.close) before the next N.

Reported per N: server CPU % of one core, RTP packets/s (video + audio, all peers, as
counted by the clients; the server's own sent/dropped counts from ``/metrics`` beside them
when it has them, and then µs per packet uses the server's count), UDP drops/s (the
kernel's RcvbufErrors for the whole box: when the clients cannot keep up, packets the
server sent are dropped before they count),
µs of server CPU per packet (total, and marginal = above the no-peer baseline), extrapolated
viewers per core at 80 % (marginal µs per packet × the stream's packet rate per viewer, the
best delivery seen in the run; a peer that got fewer packets because the server or the
clients fell behind would otherwise look cheap), RSS above baseline per peer (and per peer
added since the previous N, which leaves out the fixed cost of the first peers),
and WHEP setup time (POST → first RTP packet) p50/p95.

Caveats: a loss-free loopback means no retransmissions; on loopback the kernel's receive
path (delivery into the client's socket) runs inside the server's ``sendto`` and counts as
server CPU; without receiver reports the server's
RTCP work is lighter than with browsers. Prints numbers, never asserts. Bounded: each N
has a 45 s setup cap, the window is ≤ 20 s.

    /tmp/hv/bin/python bench/webrtc_capacity.py [--n 10 25 50] [--procs 4] [--window 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CpuSampler,
    hearth_server,
    http_get,
    make_source,
    pct,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
    wait_http_ok,
)

PIN = True
SETUP_TIMEOUT_S = 60.0
SETTLE_S = 2.0
CONCURRENT_SETUPS = 4


def udp_rcvbuf_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (whole box)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
             if ln.startswith("Udp:")]
    if len(lines) < 2 or "RcvbufErrors" not in lines[0]:
        return 0
    return int(lines[1][lines[0].index("RcvbufErrors")])


def server_sent(base: str) -> tuple[int, int] | None:
    """The server's own count of RTP packets sent and dropped (``/metrics``; None on a
    Hearth without these counters)."""
    import urllib.request
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = {ln.split()[0]: int(float(ln.split()[1])) for ln in text.splitlines()
             if ln.startswith(("hearth_webrtc_rtp_packets_total ",
                               "hearth_webrtc_rtp_dropped_total "))}
    if len(found) < 2:
        return None
    return found["hearth_webrtc_rtp_packets_total"], found["hearth_webrtc_rtp_dropped_total"]


def wait_no_peers(base: str, timeout: float = 40.0) -> None:
    """Until the server has no WHEP peer left (``/metrics``), so the next N is not measured
    with the previous N's peers still being sent to."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return
        peers = [ln for ln in text.splitlines() if ln.startswith("hearth_webrtc_peers ")]
        if not peers:  # a Hearth without the gauge: give the DELETEs time to land
            time.sleep(5)
            return
        if float(peers[0].split()[1]) == 0:
            return
        time.sleep(0.5)
    print(f"# warning: WHEP peers still open {timeout:g} s after the clients stopped")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- client processes


def client(conn: Connection, whep_url: str, n: int) -> None:
    """Client process: n receive-only peers; reports packet counts on request."""
    if PIN and len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[1:])  # off the server's core
    asyncio.run(_client(conn, whep_url, n))


async def _client(conn: Connection, whep_url: str, n: int) -> None:
    import aiohttp
    import aioice.ice
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from media.webrtc.compat import ice_connections, register_h264_profiles

    # The bench source is High profile; aiortc offers only Baseline by default, and the
    # server answers only an offer that can decode the stream (RFC 6184 §8.2.2).
    register_h264_profiles()
    counts = {"packets": 0}
    first_packet: dict[int, float] = {}

    original = aioice.ice.Connection.data_received

    def count_srtp(self: Any, data: bytes, component: int) -> None:
        if len(data) > 1 and 127 < data[0] < 192:
            if not 192 <= data[1] <= 223:  # RTCP (RFC 5761 §4): not counted
                counts["packets"] += 1
                first_packet.setdefault(id(self), time.monotonic())
            return
        original(self, data, component)

    aioice.ice.Connection.data_received = count_srtp  # type: ignore[method-assign]

    loop = asyncio.get_running_loop()
    pcs: list[tuple[Any, str, Any]] = []
    setups: list[float] = []
    failures = 0
    reasons: dict[str, int] = {}
    sem = asyncio.Semaphore(CONCURRENT_SETUPS)

    async with aiohttp.ClientSession() as http:

        async def negotiate() -> tuple[Any, Any, float] | None:
            """One WHEP session; retries 429/503 (limits) up to 3 times, as a player would."""
            for _attempt in range(4):
                pc = RTCPeerConnection()
                video = pc.addTransceiver("video", direction="recvonly")
                pc.addTransceiver("audio", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                t0 = time.monotonic()
                headers = {"Content-Type": "application/sdp"}
                async with http.post(whep_url, data=pc.localDescription.sdp,
                                     headers=headers) as r:  # fmt: skip
                    body = await r.text()
                    status = r.status
                    location = r.headers.get("Location", "")
                if status == 201:
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
                    pcs.append((pc, location, video.receiver))
                    return pc, ice_connections(pc)[0], t0
                reasons[f"{status} {body[:60]}"] = reasons.get(f"{status} {body[:60]}", 0) + 1
                await pc.close()
                if status not in (429, 503):
                    return None
                await asyncio.sleep(1.0)
            return None

        async def one() -> None:
            nonlocal failures
            async with sem:
                got = await negotiate()
            if got is None:
                failures += 1
                return
            _pc, receiver, t0 = got  # receiver: the ICE connection the media arrives on
            deadline = time.monotonic() + SETUP_TIMEOUT_S
            while id(receiver) not in first_packet and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if id(receiver) in first_packet:
                setups.append(first_packet[id(receiver)] - t0)
            else:
                failures += 1
                reasons["no media before timeout"] = reasons.get("no media before timeout", 0) + 1

        # The whole setup is bounded: a server that cannot keep up with negotiations while it
        # serves the peers already connected reports failures, not a hung bench.
        tasks = [asyncio.ensure_future(one()) for _ in range(n)]
        _done, pending = await asyncio.wait(tasks, timeout=SETUP_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            failures += len(pending)
            reasons["setup not finished in time"] = len(pending)
        conn.send(("ready", {"setups": setups, "failures": failures, "reasons": reasons}))
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "count":
                conn.send(("count", counts["packets"]))
            elif cmd == "stop":
                base = whep_url.split("/whep/", 1)[0]

                async def end(pc: Any, location: str, base: str = base) -> None:
                    try:
                        async with http.delete(base + location):
                            pass
                    except aiohttp.ClientError:
                        pass
                    await pc.close()

                await asyncio.gather(*(end(pc, loc) for pc, loc, _ in pcs),
                                     return_exceptions=True)
                conn.send(("stopped", None))
                return


# --------------------------------------------------------------------------- parent


class LoopProbe:
    """GET /healthz every 20 ms from a thread: the reply time is how long any request (and
    every ingest read) waits for the server's one event loop, e.g. behind a fan-out pass."""

    def __init__(self, base: str) -> None:
        self.url = base + "/healthz"
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            t0 = time.perf_counter()
            if http_get(self.url, 5.0)[0] == 200:
                self.times.append(time.perf_counter() - t0)

    def __enter__(self) -> LoopProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        """p50/p99/max reply time in ms."""
        if not self.times:
            return "-"
        ms = [1000 * t for t in self.times]
        return f"{pct(ms, 50):.1f}/{pct(ms, 99):.1f}/{max(ms):.1f}"


def measure_n(whep_url: str, server_pid: int, n: int, procs: int, window: float) -> dict[str, Any]:
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    shares = [s for s in shares if s]
    ctx = mp.get_context("fork")
    pipes: list[Connection] = []
    children = []
    for share in shares:
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=client, args=(child_end, whep_url, share), daemon=True)
        p.start()
        children.append(p)
        pipes.append(parent_end)
    setups: list[float] = []
    failures = 0
    reasons: dict[str, int] = {}
    try:
        for c in pipes:
            if not c.poll(SETUP_TIMEOUT_S + 30):
                raise TimeoutError("client setup did not finish")
            info = c.recv()[1]
            setups += info["setups"]
            failures += info["failures"]
            for k, v in info["reasons"].items():
                reasons[k] = reasons.get(k, 0) + v
        time.sleep(SETTLE_S)

        def packets() -> int:
            for c in pipes:
                c.send("count")
            return sum(c.recv()[1] for c in pipes)

        sampler = CpuSampler([server_pid])
        base = whep_url.split("/whep/", 1)[0]
        s0 = server_sent(base)
        p0, d0 = packets(), udp_rcvbuf_errors()
        sampler.start()
        with LoopProbe(base) as probe:
            time.sleep(window)
        cpu_s, wall = sampler.stop()
        p1, d1 = packets(), udp_rcvbuf_errors()
        s1 = server_sent(base)
        rss = rss_mb(server_pid)
        for c in pipes:
            c.send("stop")
        for c in pipes:
            if c.poll(60):
                c.recv()
        wait_no_peers(base)
    finally:
        for p in children:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    sent = (s1[0] - s0[0]) / wall if s0 and s1 else None
    dropped = (s1[1] - s0[1]) / wall if s0 and s1 else None
    return {"cpu": cpu_s / wall, "pps": (p1 - p0) / wall, "rss": rss, "setups": setups,
            "sent": sent, "sent_dropped": dropped,
            "drops": (d1 - d0) / wall,
            "connected": len(setups), "failures": failures, "reasons": reasons,
            "healthz": probe.summary()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 25, 50])
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the server to CPU 0 and the clients to the others")
    args = ap.parse_args()
    global PIN
    PIN = not args.no_pin
    ns = [max(1, min(n, 200)) for n in args.n]
    procs = max(1, min(args.procs, 8))
    window = max(2.0, min(args.window, 20.0))
    os.environ.update({
        "HEARTH_WEBRTC_ENABLED": "1", "HEARTH_WEBRTC_PUBLIC_IP": "127.0.0.1",
        "HEARTH_WEBRTC_MAX_PEERS": "500", "HEARTH_WEBRTC_MAX_PENDING": "64",
        "HEARTH_WEBRTC_MAX_PENDING_PER_IP": "64",
    })  # fmt: skip
    os.environ.setdefault("HEARTH_LOG_LEVEL", "WARNING")
    print_system_info()
    print(f"# uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    src = make_source()
    t_start = time.monotonic()
    rows: list[list[object]] = []
    with hearth_server() as srv:
        created = srv.create_stream("b10")
        sid = created["id"]
        pub = start_publisher(src, srv.rtmp_url(created["stream_key"]), loop=True)
        cpus = sorted(os.sched_getaffinity(0))
        if PIN and len(cpus) >= 2:
            # Server (every thread) on the first CPU, publisher and clients on the others.
            subprocess.run(["taskset", "-a", "-p", "-c", str(cpus[0]), str(srv.proc.pid)],
                           stdout=subprocess.DEVNULL, check=False)
            subprocess.run(["taskset", "-a", "-p", "-c", ",".join(map(str, cpus[1:])),
                            str(pub.pid)], stdout=subprocess.DEVNULL, check=False)
            print(f"# pinned: server on CPU {cpus[0]}, publisher and clients on {cpus[1:]}")
        try:
            wait_http_ok(srv.playlist_url(sid), timeout=20)
            time.sleep(2.0)
            whep_url = f"{srv.base}/whep/{sid}"
            sampler = CpuSampler([srv.proc.pid])
            sampler.start()
            time.sleep(window / 2)
            cpu0, wall0 = sampler.stop()
            base_cpu, base_rss = cpu0 / wall0, rss_mb(srv.proc.pid)
            rows.append(["0 (stream only)", "-", f"{100 * base_cpu:.1f}", *["-"] * 7,
                         f"{base_rss:.0f}", "-", "-", "-", "-"])  # fmt: skip
            results: list[tuple[int, dict[str, Any]]] = []
            for n in ns:
                results.append((n, measure_n(whep_url, srv.proc.pid, n, procs, window)))
            # The stream's packet rate per viewer: the best delivery of the run (a server
            # that falls behind, or clients that do, deliver less than the stream has).
            nominal = max(((r["sent"] or r["pps"]) / r["connected"] for _, r in results
                           if r["connected"]),
                          default=float("nan"))
            prev_rss, prev_peers = base_rss, 0
            for n, r in results:
                if r["reasons"]:
                    print(f"# N={n}: refused/failed attempts: {r['reasons']}")
                connected = r["connected"]
                pps = r["sent"] or r["pps"]  # the server's own count when it has one
                marginal = max(r["cpu"] - base_cpu, 0.0)
                us_total = 1e6 * r["cpu"] / pps if pps else float("nan")
                us_marg = 1e6 * marginal / pps if pps else float("nan")
                # Viewers per core from the marginal cost of a packet and the stream's packet
                # rate, not from CPU per connected peer: a peer that was sent less (server or
                # clients behind) would otherwise look cheap.
                per_core = 0.8e6 / (us_marg * nominal) if us_marg else float("nan")
                rss_peer = (r["rss"] - base_rss) / connected if connected else float("nan")
                # RSS added per peer since the previous N: without the fixed costs of the
                # first peers (the Opus transcoder, imports, the per-stream state).
                slope = ((r["rss"] - prev_rss) / (connected - prev_peers)
                         if connected > prev_peers else float("nan"))
                prev_rss, prev_peers = r["rss"], connected
                rows.append([
                    f"{n}", f"{connected}/{n}", f"{100 * r['cpu']:.1f}", f"{r['pps']:.0f}",
                    f"{r['pps'] / connected if connected else float('nan'):.0f}",
                    "-" if r["sent"] is None else f"{r['sent']:.0f}/{r['sent_dropped']:.0f}",
                    f"{r['drops']:.0f}",
                    f"{us_total:.1f}", f"{us_marg:.1f}", f"{per_core:.0f}", f"{r['rss']:.0f}",
                    f"{rss_peer:.2f}", f"{slope:.2f}",
                    f"{pct(r['setups'], 50):.2f}/{pct(r['setups'], 95):.2f}",
                    r["healthz"],
                ])  # fmt: skip
        finally:
            terminate(pub)
    print(f"# 1 publish at 3 Mbit/s; {procs} client processes; {window:g} s window per N;"
          f" total {time.monotonic() - t_start:.0f} s; stream packet rate {nominal:.0f}/s per"
          " viewer (best delivery of the run)")  # fmt: skip
    print_table(
        ["peers", "connected", "server CPU %", "RTP pkt/s", "pkt/s/peer",
         "server sent/dropped pkt/s", "UDP drops/s",
         "µs/pkt",
         "µs/pkt marginal",
         "viewers/core @80%", "RSS MB", "MB/peer", "MB/peer since previous N",
         "setup p50/p95 s", "/healthz p50/p99/max ms"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
