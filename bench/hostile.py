"""Hostile clients beside an honest 3 Mbit/s publisher (issue 10): what each attack costs.

Method. One ``hearth serve`` with its default limits (the bench's usual per-address cap
lifting is undone here: the caps are what is being measured) and the bench source
(720p30, 3 Mbit/s CBR, 2 s GOP) pushed in a loop with ``ffmpeg -re -c copy``. Then each
attack runs for ``--seconds`` (default 20), first from one address (127.0.0.2) and then from
64 (127.0.0.2..; every 127/8 address is loopback), while probes measure, side by side:

- ``/healthz`` latency every 100 ms from 127.0.0.1 (p50, p99, failures);
- the longest gap between new LL-HLS parts of the honest stream (normal: the 0.2 s target);
- the server's RSS growth over the attack and its CPU (% of one core);
- whether a new legitimate publisher (ffmpeg from 127.0.0.1, halfway through the attack)
  gets a playlist, and how fast;
- log lines written during the attack.

Attacks (tests/helpers/attacks.py): ``tiny`` keyless connections flooding 18-byte pings and
1-byte chunks; ``big`` keyless connections each starting an 8 MiB message; ``halfopen``
connections sending half a C1 and waiting; ``wrongkey`` publishes with wrong keys as fast as
refusals come; ``slowloris`` HTTP request heads trickled a byte every 2 s.

Targets (issue 10, one address): /healthz p99 ≤ 50 ms, part gap ≤ 0.5 s, RSS ≤ +64 MiB, the
new publisher connects; from 64 addresses the same with RSS ≤ +256 MiB. Prints numbers,
never asserts. Run ``uptime`` alongside: the box is shared.

    python bench/hostile.py [--seconds 20] [--attacks tiny big ...] [--sources 1 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    hearth_server,
    make_source,
    print_system_info,
    print_table,
    start_publisher,
    terminate,
)
from tests.helpers import attacks  # noqa: E402

DEFAULT_LIMITS = {
    "HEARTH_RTMP_MAX_CONNECTIONS": "64",
    "HEARTH_RTMP_MAX_CONNECTIONS_PER_IP": "8",
    "HEARTH_RTMP_CONNECTS_PER_IP_PER_SECOND": "2",
    "HEARTH_HTTP_MAX_CONNECTIONS_PER_IP": "32",
    "HEARTH_LOG_LEVEL": "INFO",
}

HEADERS = ["attack", "addrs", "healthz p50 ms", "p99 ms", "fail", "max part gap s",
           "RSS +MiB", "CPU %", "new publisher", "log lines"]

PER_ADDRESS = {  # connections per attacking address: (one address, 64 addresses)
    "tiny": (4, 1),
    "big": (8, 1),
    "halfopen": (300, 5),
    "wrongkey": (4, 1),
    "slowloris": (200, 4),
}


def start_attack(name: str, server: object, count: int, seconds: float,
                 ) -> subprocess.Popen[bytes]:
    """The attack in its own process: the attacker's CPU must not slow our probes."""
    per_address = PER_ADDRESS[name][0 if count == 1 else 1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.attacks", name,
         "--rtmp-port", str(server.rtmp_port), "--http-port", str(server.http_port),  # type: ignore[attr-defined]
         "--sources", str(count), "--per-address", str(per_address),
         "--seconds", str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env)


def _legit_publish(server: object, src: Path, result: dict[str, float | str]) -> None:
    created = server.create_stream("legit during attack")  # type: ignore[attr-defined]
    url = server.playlist_url(created["id"])  # type: ignore[attr-defined]
    t0 = time.monotonic()
    pub = start_publisher(src, server.rtmp_url(created["stream_key"]))  # type: ignore[attr-defined]
    try:
        import urllib.request

        while time.monotonic() - t0 < 20:
            try:
                with urllib.request.urlopen(url, timeout=3) as resp:
                    if b"#EXT-X-PART:" in resp.read():
                        result["legit"] = f"ok {time.monotonic() - t0:.1f}s"
                        return
            except OSError:
                pass
            time.sleep(0.1)
        result["legit"] = "FAILED"
        lines = server.log.read_text(errors="replace").splitlines()  # type: ignore[attr-defined]
        print("  new publisher failed; server log tail:", *lines[-12:], sep="\n    ")
    finally:
        terminate(pub, 5)


async def run_attack(server: object, src: Path, honest_id: str, name: str, count: int,
                     seconds: float) -> list[object]:
    pid = server.proc.pid  # type: ignore[attr-defined]
    base = server.base  # type: ignore[attr-defined]
    legit: dict[str, float | str] = {"legit": "-"}
    attacker = start_attack(name, server, count, seconds)

    async def publisher_halfway(stop: asyncio.Event) -> None:
        await asyncio.sleep(seconds / 2)
        await asyncio.get_running_loop().run_in_executor(None, _legit_publish, server, src,
                                                         legit)
        await stop.wait()

    _, probed = await attacks.run_for(
        seconds, publisher_halfway, lambda stop: attacks.probe(base, honest_id, pid, stop))
    out, err = await asyncio.get_running_loop().run_in_executor(
        None, lambda: attacker.communicate(timeout=60))
    stats = out.decode().strip().splitlines()[-1] if out.strip() else err.decode()[-200:]
    return [name, count, f"{probed.percentile(0.5):.1f}", f"{probed.percentile(0.99):.1f}",
            probed.healthz_failures, f"{probed.part_gap():.2f}",
            f"{probed.rss_growth_mib():.1f}", f"{100 * probed.cpu_seconds / seconds:.0f}",
            legit["legit"], stats]


async def baseline(server: object, honest_id: str, seconds: float) -> list[object]:
    pid = server.proc.pid  # type: ignore[attr-defined]

    async def idle(stop: asyncio.Event) -> None:
        await stop.wait()

    _, probed = await attacks.run_for(
        seconds, idle, lambda stop: attacks.probe(server.base, honest_id, pid, stop))  # type: ignore[attr-defined]
    return ["(none)", 0, f"{probed.percentile(0.5):.1f}", f"{probed.percentile(0.99):.1f}",
            probed.healthz_failures, f"{probed.part_gap():.2f}",
            f"{probed.rss_growth_mib():.1f}", f"{100 * probed.cpu_seconds / seconds:.0f}", "-"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per attack (default 20)")
    parser.add_argument("--attacks", nargs="*", default=list(attacks.ATTACKS),
                        choices=attacks.ATTACKS)
    parser.add_argument("--sources", nargs="*", type=int, default=[1, 64])
    args = parser.parse_args()
    print_system_info()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    for key, value in DEFAULT_LIMITS.items():
        os.environ[key] = value  # explicit values win over bench/common's cap lifting
    src = make_source(gop_seconds=2, duration=60)
    rows: list[list[object]] = []
    with hearth_server() as server:
        created = server.create_stream("honest 3 Mbit/s")
        pub = start_publisher(src, server.rtmp_url(created["stream_key"]), loop=True)
        try:
            deadline = time.monotonic() + 30
            import urllib.request

            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(server.playlist_url(created["id"]),
                                                timeout=3) as resp:
                        if b"#EXT-X-PART:" in resp.read():
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            rows.append([*asyncio.run(baseline(server, created["id"], min(args.seconds, 10))),
                         0])
            print_table(HEADERS, rows[-1:])
            for count in args.sources:
                for name in args.attacks:
                    before = len(server.log.read_bytes().splitlines())
                    row = asyncio.run(run_attack(server, src, created["id"], name, count,
                                                 args.seconds))
                    stats = row.pop()
                    rows.append([*row, len(server.log.read_bytes().splitlines()) - before])
                    print(f"  {name} x{count}: attacker {stats}", flush=True)
                    print_table(HEADERS, rows[-1:])
                    time.sleep(6)  # let deadlines expire before the next attack
        finally:
            terminate(pub)
    print()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print_table(HEADERS, rows)


if __name__ == "__main__":
    main()
