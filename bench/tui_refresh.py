"""TUI refresh under load: 20 live streams, 50 chat messages/s (fake admin client, headless).

Prints the time from a chat event's arrival to the end of the redraw that shows it
(median/p95/max, ms) and the process CPU used per wall second (% of one core).
Targets: refresh < 100 ms, CPU < 10 %. Issue 12 measured 18.9 % before the chat list
became a Line-API widget and captions stopped asking for screen layouts.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from appliance.api.schema import ChatChange, ChatEvent, ViewersEvent
from tui.app import DashboardApp
from tui.messages import Redraw
from tui.testing import T0, FakeAdminClient, make_chat, make_stream

STREAMS = 20
RATE = 50  # chat messages per second
SECONDS = 10.0


async def main() -> None:
    streams = [make_stream(n, viewers=n) for n in range(1, STREAMS + 1)]
    fake = FakeAdminClient(streams, relays=[])
    app = DashboardApp(fake)
    sid = streams[0].id
    sent: dict[int, float] = {}
    latencies: list[float] = []
    pending: list[int] = []

    def hook(message: object) -> None:
        if isinstance(message, Redraw):
            done = time.perf_counter()
            for n in pending:
                latencies.append((done - sent[n]) * 1000)
            pending.clear()

    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        await fake.subscribed.wait()
        await pilot.pause()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        n = 0
        while time.perf_counter() - wall0 < SECONDS:
            target = wall0 + n / RATE
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            sent[n] = time.perf_counter()
            pending.append(n)
            fake.emit(ChatEvent(sid, ChatChange.NEW, make_chat(sid, 1000 + n), at=T0))
            if n % RATE == 0:  # once a second every stream's viewers move too
                for s in streams:
                    fake.emit(ViewersEvent(s.id, current=n % 97, peak=100, total=500, at=T0))
            n += 1
        await pilot.pause()
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"tui_refresh: {STREAMS} live streams, {RATE} chat msg/s for {SECONDS:.0f} s, "
          f"{len(latencies)} messages")
    print(f"  refresh latency ms: median {statistics.median(latencies):.1f}  p95 {p95:.1f}  "
          f"max {latencies[-1]:.1f}   (target < 100)")
    print(f"  CPU: {cpu:.1f} % of one core   (target < 10)")
    load = os.getloadavg()
    print(f"  machine load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} cores (a busy box inflates both figures)")


if __name__ == "__main__":
    asyncio.run(main())
