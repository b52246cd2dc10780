"""Start-up and shutdown of the whole appliance on one asyncio loop.

Order of start: refuse if a Hearth already answers on this data dir → bind the public HTTP
and RTMP listeners (port 0 resolved) → build the one immutable configuration every service
sees (:func:`appliance.config.with_bound_ports`) → data dir → database (migrations,
reconcile) → stream service → RTMP server → public HTTP site → admin Unix socket →
background tasks → ``READY=1``. Shutdown reverses it
(uvicorn's sequence): stop accepting, tell publishers, let viewers finish up to
``shutdown_timeout``, then close the database writer last so that nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance import logsafe
from appliance.access import AccessService
from appliance.analytics.service import AnalyticsService
from appliance.api.admin_app import build_admin_app
from appliance.api.conncap import AddressCap, CappedTCPSite, body_timeout_middleware
from appliance.api.peercred import PeerPolicy, peercred_middleware, policy_for_socket
from appliance.api.public import build_public_app, load_static
from appliance.bus import BroadcastChanged, BroadcastReason, Bus
from appliance.channels import ChannelService
from appliance.config import Config, with_bound_ports
from appliance.db import Store, queries
from appliance.delivery.recorder import Recorder
from appliance.delivery.service import Delivery
from appliance.delivery.storage import Storage
from appliance.ingest import IngestHandler
from appliance.ladder import choose_encoder
from appliance.listeners import (
    Listeners,
    PortInUse,
    StartupError,
    bind_listeners,
    ensure_not_running,
)
from appliance.nostr.service import NostrService
from appliance.periodic import every
from appliance.restream import RestreamService
from appliance.srt.libsrt import SrtError, SrtPortInUse
from appliance.srt.server import SrtOptions, SrtServer
from appliance.state import AppState
from appliance.tasks import BackgroundTasks
from appliance.webhooks.service import WebhookService
from media import accel
from media.rtmp.chunk import NATIVE_CHUNK_READER
from media.rtmp.server import (
    PreAuthBudget,
    ReadCoalescing,
    RefusalLog,
    RtmpServerStats,
    start_rtmp_server,
)
from media.rtmp.session import RtmpServerSession
from media.transcode import detect_hardware_encoders

logger = logging.getLogger(__name__)

HEALTH_PERSIST_SECONDS = 10.0
CHECKPOINT_SECONDS = 60.0
VIEWERS_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 5.0


def sd_notify(message: str) -> bool:
    """Send a message to systemd's notify socket, if we run under ``Type=notify``."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(message.encode())
        return True
    except OSError as exc:
        logger.warning("sd_notify failed: %s", exc)
        return False


async def start_admin_site(runner: web.AppRunner, path: Path, mode: int) -> web.UnixSite:
    """Bind the admin socket with restrictive permissions from the first instant.

    The umask is set *before* bind so there is no window in which the socket is
    world-connectable (docs/threat-model.md §admin-socket; alpamon #409); chmod then applies the
    configured mode.
    """
    # Startup, before any client is served: a blocking stat/mkdir here delays nobody.
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():  # noqa: ASYNC240
        path.unlink()  # noqa: ASYNC240 - stale socket from a previous run (kill -9)
    old = os.umask(0o177)
    try:
        site = web.UnixSite(runner, str(path))
        await site.start()
    finally:
        os.umask(old)
    os.chmod(path, mode)
    return site


class Appliance:
    """The running appliance. ``async with Appliance(config) as app: await app.wait()``."""

    def __init__(self, config: Config, *, recording_storage: Storage | None = None,
                 listeners: Listeners | None = None) -> None:
        """``recording_storage`` replaces the recordings' storage seam (tests inject faults);
        ``listeners`` are already bound sockets (else they are bound on start).

        ``config`` is the loaded configuration; once the listeners are bound, :attr:`config`
        is the final one (real ports), and it is the only one any service is given.
        """
        self.config = config
        self._recording_storage = recording_storage
        self._listeners = listeners
        self.state: AppState | None = None
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._tasks = BackgroundTasks("appliance")
        self.http_port = 0
        self.rtmp_port = 0
        self.srt_port = 0
        self.srt: SrtServer | None = None

    async def __aenter__(self) -> Appliance:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    def _bind(self) -> Config:
        """Refuse a second instance, bind the listeners, and fix the configuration."""
        if self._listeners is None:
            ensure_not_running(self.config)
            self._listeners = bind_listeners(self.config)
        self._stack.callback(self._listeners.close)
        self.http_port = self._listeners.http_port
        self.rtmp_port = self._listeners.rtmp_port
        if self.config.srt.enabled:
            self.srt = self._bind_srt()
            self.srt_port = self.srt.port
            self._stack.push_async_callback(self.srt.close)  # if start-up fails later
        self.config = with_bound_ports(self.config, http_port=self.http_port,
                                       rtmp_port=self.rtmp_port,
                                       srt_port=self.srt_port if self.srt else None)
        return self.config

    def _bind_srt(self) -> SrtServer:
        s = self.config.srt
        try:
            return SrtServer(SrtOptions(host=s.host, port=s.port, latency_ms=s.latency_ms,
                                        passphrase=s.passphrase, idle_timeout=s.idle_timeout,
                                        max_connections=s.max_connections))
        except SrtPortInUse as exc:
            raise PortInUse(f"{exc}; choose another with --srt PORT or HEARTH_SRT_PORT"
                            ) from None
        except SrtError as exc:
            raise StartupError(f"SRT ingest is enabled but cannot start: {exc}") from None

    async def _start(self) -> None:
        config = self._bind()
        data = config.data_path
        data.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(data, 0o700)
        store = await Store.open(data / "hearth.db")
        self._stack.push_async_callback(store.close)

        bus = Bus()
        service = ChannelService(config, store, bus)
        await service.start()
        # The ladder's encoder: a hardware one only if it opens and encodes a frame here.
        detected = ([] if config.ladder.encoder == "software"
                    else await asyncio.to_thread(detect_hardware_encoders))
        service.ladder_encoder = choose_encoder(config.ladder.encoder, detected)
        logger.info("quality ladder encoder: %s", service.ladder_encoder.note)
        self._stack.push_async_callback(service.close)
        access = AccessService(store)  # grant secret, epochs, channel passwords
        await access.start()

        delivery = Delivery(data, log=service.log, storage=self._recording_storage,
                            thumbnail_interval=config.recording.thumbnail_interval, bus=bus)
        await delivery.start()
        self._stack.push_async_callback(delivery.close)

        # Before ingest and Nostr start, so no broadcast or refusal event is missed.
        webhooks = WebhookService(store, bus, config.webhooks,
                                  base_url=lambda: self.config.public_base_url,
                                  broadcast=service.get_broadcast)
        await webhooks.start()
        self._stack.push_async_callback(webhooks.close)

        # Before ingest starts, so a broadcast's start is never missed.
        restream = RestreamService(store, bus, service, config.restream)
        await restream.start()
        self._stack.push_async_callback(restream.close)

        analytics: AnalyticsService | None = None
        if config.analytics.enabled:  # before ingest too: every broadcast end is seen
            analytics = AnalyticsService(config.analytics, store, bus, hls=config.hls)
            await analytics.start()
            self._stack.push_async_callback(analytics.close)  # before the store closes

        ingest = IngestHandler(service, config.rtmp)
        rtmp_stats = RtmpServerStats(RefusalLog(logging.getLogger("media.rtmp.server"), "rtmp"))
        ingest.rtmp_stats = rtmp_stats
        self._stack.callback(rtmp_stats.refusals.close)
        self._stack.callback(ingest.refusals.close)
        budget = PreAuthBudget(
            bytes_per_second=config.rtmp.preauth_bytes_per_second,
            burst_bytes=2 * config.rtmp.preauth_bytes_per_second,
            chunks_per_second=config.rtmp.preauth_chunks_per_second,
            burst_chunks=2 * config.rtmp.preauth_chunks_per_second,
            max_connections=config.rtmp.max_preauth_connections,
            connects_per_second=config.rtmp.connects_per_ip_per_second,
        )
        assert self._listeners is not None
        rtmp = await start_rtmp_server(
            config.rtmp.host, config.rtmp.port, ingest, sock=self._listeners.rtmp,
            handshake_timeout=config.rtmp.handshake_timeout,
            publish_timeout=config.rtmp.publish_timeout,
            idle_timeout=config.rtmp.idle_timeout,
            max_connections=config.rtmp.max_connections,
            max_connections_per_ip=config.rtmp.max_connections_per_ip,
            budget=budget,
            stats=rtmp_stats,
            coalescing=ReadCoalescing(window=config.rtmp.read_coalescing),
            session_factory=functools.partial(
                RtmpServerSession, native_chunk_reader=config.rtmp.native_chunk_reader),
        )

        async def close_rtmp() -> None:
            rtmp.close()
            for conn in list(ingest.connections.values()):
                conn.abort()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(rtmp.wait_closed(), 2)

        self._stack.push_async_callback(close_rtmp)
        srt_ingest = None
        if self.srt is not None:
            from appliance.srt.ingest import SrtIngest

            srt_ingest = SrtIngest(ingest, service)
            self.srt.start(srt_ingest)
            self._stack.push_async_callback(self.srt.close)  # before the channel service

        nostr = NostrService(config, store, service, bus)
        await nostr.start()
        self._stack.push_async_callback(nostr.close)

        nostr.use_media(delivery)  # ended 30311s carry their recording's URL
        state = AppState(config=config, store=store, service=service, ingest=ingest, bus=bus,
                         static_files=load_static(), nostr=nostr, delivery=delivery,
                         media=delivery, webhooks=webhooks, restream=restream,
                         access=access, analytics=analytics, srt=self.srt,
                         srt_ingest=srt_ingest)
        self.state = state
        public_app = build_public_app(state)
        public_app.middlewares.append(body_timeout_middleware(config.http.body_timeout))
        # aiohttp's keep-alive timer doubles as the request-head deadline (see api/http.py).
        public_runner = web.AppRunner(public_app, access_log=None,
                                      shutdown_timeout=config.shutdown_timeout,
                                      keepalive_timeout=config.http.header_timeout)
        await public_runner.setup()
        self._stack.push_async_callback(public_runner.cleanup)
        if config.webrtc.enabled:
            from appliance.webrtc import WebRtcManager  # aiortc is imported only when enabled

            state.webrtc = WebRtcManager(config.webrtc, service)
            state.webrtc.analytics = analytics
            await state.webrtc.start()
            self._stack.push_async_callback(state.webrtc.close)  # every peer closed first
            if config.webrtc.whip:
                from appliance.whip import WhipManager

                state.whip = WhipManager(config.webrtc, ingest,
                                         keyframe_interval=config.hls.segment_target)
                await state.whip.start()
                self._stack.push_async_callback(state.whip.close)  # publishers detached first
        http_cap = AddressCap(config.http.max_connections_per_ip,
                              RefusalLog(logging.getLogger("appliance.api.http"), "http"))
        state.http_cap = http_cap
        self._stack.callback(http_cap.refusals.close)
        site = CappedTCPSite(public_runner, config.http.host, config.http.port, cap=http_cap,
                             sock=self._listeners.http)
        await site.start()
        nostr.start_tasks()
        delivery.base_url = lambda: state.config.public_base_url

        def recording_changed(rec: Recorder) -> None:
            # A recording completes after its broadcast's "ended" 30311 went out (the muxer
            # drains first): republish it, now with the ``recording`` tag (NIP-53).
            # Not at shutdown: recordings are closed then, their broadcasts stay live.
            if rec.state == "complete" and not self._stop.is_set():
                self._spawn(_republish(nostr, rec.broadcast_id), "nostr-recording")

        delivery.on_recording_change = recording_changed

        admin_app = build_admin_app(state)
        socket_path = config.admin_socket
        policy: list[PeerPolicy] = []

        def peer_policy() -> PeerPolicy:
            if not policy:  # the socket exists by the first request
                policy.append(policy_for_socket(socket_path))
            return policy[0]

        admin_app.middlewares.insert(0, peercred_middleware(peer_policy))
        admin_runner = web.AppRunner(admin_app, access_log=None)
        await admin_runner.setup()
        self._stack.push_async_callback(admin_runner.cleanup)
        await start_admin_site(admin_runner, config.admin_socket, config.admin.socket_mode)
        self._stack.callback(lambda: config.admin_socket.unlink(missing_ok=True))

        self._spawn(record_broadcasts(bus, service, delivery, config), "recordings")
        self._spawn(every(config.recording.retention_interval,
                                lambda: apply_retention(delivery, self.config, store)), "retention")
        self._spawn(every(HEALTH_PERSIST_SECONDS, service.persist_all_health), "health")
        self._spawn(every(CHECKPOINT_SECONDS, store.checkpoint), "checkpoint")
        self._spawn(every(VIEWERS_SECONDS, service.emit_viewers), "viewers")
        self._spawn(every(HEALTH_CHECK_SECONDS, ingest.check_health), "ingest-health")
        watchdog = os.environ.get("WATCHDOG_USEC")
        if watchdog:
            self._spawn(self._watchdog(int(watchdog) / 2e6), "watchdog")
        logger.info("Hearth ready: %s (RTMP %s%s, admin socket %s)", config.public_base_url,
                    config.rtmp_url, f", SRT {config.srt_url}KEY" if config.srt_url else "",
                    config.admin_socket)
        sd_notify("READY=1\nSTATUS=serving")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.spawn(coro, name)

    async def _watchdog(self, interval: float) -> None:
        # Pinging from a loop task proves the loop is alive, not just the process.
        while True:
            sd_notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        self._stop.set()  # also when leaving ``async with`` without stop(): see recording_changed
        await self._tasks.close()
        await self._stack.aclose()


async def _republish(nostr: NostrService, broadcast_id: str) -> None:
    try:
        await nostr.publish_activity(broadcast_id)
    except Exception:
        logger.exception("nostr: republishing %s with its recording failed", broadcast_id)


async def record_broadcasts(bus: Bus, service: ChannelService, delivery: Delivery,
                            config: Config) -> None:
    """Attach the recorder and thumbnailer to each broadcast's live muxer when it starts (or
    resumes after a restart), when ``recording.enabled`` and its channel's ``record`` allow it;
    thumbnails either way. Detach at its end."""
    async with bus.subscribe(BroadcastChanged) as events:
        async for event in events:
            assert isinstance(event, BroadcastChanged)
            if event.reason in (BroadcastReason.STARTED, BroadcastReason.RECONNECTED):
                lb = service.runtime(event.broadcast_id)
                if lb is None or lb.ended:
                    continue
                try:
                    channel = await service.get_channel(event.channel_id)
                except LookupError:
                    continue
                delivery.attach(event.broadcast_id, lb.muxer,
                                record=config.recording.enabled and channel.record)
            elif event.reason is BroadcastReason.ENDED:
                delivery.detach(event.broadcast_id)


async def apply_retention(delivery: Delivery, config: Config, store: Store) -> None:
    """One retention pass (README "Recordings"): each recording older than its channel's
    ``retention_days`` (else ``recording.max_age_days``) goes, then the oldest unkept ones
    while all recordings exceed ``recording.disk_cap_gb``."""
    rc = config.recording
    default = rc.max_age_days * 86400 or None
    days = await store.read(queries.retention_days_by_broadcast)

    def max_age(broadcast_id: str) -> float | None:
        d = days.get(broadcast_id)
        return d * 86400.0 if d else default

    items = await delivery.retention_items(max_age)
    await delivery.apply_retention(items, int(rc.disk_cap_gb * 1e9) or None)


@contextlib.contextmanager
def _signals(stop: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(config: Config) -> None:
    """Run the appliance until SIGTERM/SIGINT."""
    logsafe.install()  # every log line inert, whatever peers put in names and messages
    started = time.monotonic()
    async with Appliance(config) as app:
        native = config.rtmp.native_chunk_reader and NATIVE_CHUNK_READER is not None
        logger.info("started in %.2f s (event loop: %s, RTMP chunk parser: %s, ingest path: %s)",
                    time.monotonic() - started,
                    type(asyncio.get_running_loop()).__module__.partition(".")[0],
                    "C" if native else "Python", accel.DECISION.describe())
        with _signals(app.stop):
            await app.wait()
        logger.info("shutting down")


__all__ = ["Appliance", "serve", "sd_notify"]
