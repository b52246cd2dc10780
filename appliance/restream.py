"""Simulcast: each live broadcast, stream-copied to its channel's RTMP/RTMPS targets.

:class:`RestreamService` owns the targets (SQLite ``restream_targets``, mirrored in memory) and
one :class:`TargetRunner` per target of a channel that is live. It follows the broadcast model,
not any ingest protocol: a runner starts when the channel's broadcast has a publisher (RTMP,
or any other ingest that feeds :class:`~appliance.live.LiveBroadcast`), keeps running through a
reconnect grace, and stops when the broadcast ends (its hub publisher closes).

Media path: each connected runner owns a bounded hub reader
(:meth:`LiveBroadcast.open_reader`), so ingest hands it units without waiting; a runner that
falls behind (a slow or dead target) loses its backlog, counted, and resumes at the next
keyframe (docs/threat-model.md §restream). The reader is opened once the target accepted the
publish, so every connection starts with the sequence headers and a keyframe. Units become
FLV tags (:mod:`media.flv_mux`) sent by the sans-I/O client (:mod:`media.rtmp.client`).

Keys are secrets: only :meth:`RtmpUrl.redacted` forms reach logs, errors and the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable

from appliance.api.schema import ChannelChange, RestreamState, RestreamTarget, safe_text
from appliance.bus import BroadcastChanged, Bus, ChannelChanged, RestreamFailed
from appliance.channels import ChannelService
from appliance.config import RestreamConfig
from appliance.db import Store
from appliance.db import restream_queries as rq
from appliance.hub import Reader
from appliance.live import LiveBroadcast
from appliance.tasks import BackgroundTasks
from media.flv_mux import FlvTagMuxer
from media.rtmp.amf0 import AmfValue
from media.rtmp.client import PublishFailed, PublishStarted, RtmpClientSession, ServerClosed
from media.rtmp.errors import RtmpError
from media.rtmp.session import redact_stream_name
from media.rtmp.url import RtmpUrl, RtmpUrlError, parse_rtmp_url
from media.units import CodecConfig, MediaUnit

logger = logging.getLogger(__name__)

MAX_TARGETS_PER_CHANNEL = 10
"""Targets one channel may have (each costs a connection and a copy of the stream's bytes)."""

FAILED_AFTER = 5
"""Failed attempts in a row after which a target shows ``failed`` (and the event log says so)."""

WRITE_HIGH_WATER = 256 * 1024
"""Bytes buffered for a target above which the runner waits for the socket to drain."""

MAX_WRITE_BUFFER = 8 << 20
"""Bytes buffered for a target beyond which the connection is dropped whoever wrote them."""

BITRATE_WINDOW = 5.0
"""Seconds over which the shown bitrate is averaged."""

SslContextFactory = Callable[[], ssl.SSLContext]


class RestreamError(ValueError):
    """A target cannot be added (bad URL, too many); the message never contains the key."""


class TargetNotFound(LookupError):
    """No such target on this channel."""


def make_ssl_context(ca_file: str = "") -> ssl.SSLContext:
    """TLS for ``rtmps://``: the system CA store, plus ``ca_file`` when set; the host name is
    verified (docs/threat-model.md §restream)."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


class TargetLostError(Exception):
    """This connection to the target ended; the runner reconnects after a pause."""


class TargetRunner:
    """Publishes one broadcast to one target, reconnecting with exponential backoff."""

    def __init__(self, row: rq.TargetRow, url: RtmpUrl, lb: LiveBroadcast,
                 config: RestreamConfig, ssl_context: SslContextFactory,
                 log: Callable[[str, str, str, str | None], None], queue_units: int,
                 bus: Bus | None = None) -> None:
        self.row = row
        self.lb = lb
        self._url = url
        self._config = config
        self._ssl_context = ssl_context
        self._log = log
        self._bus = bus
        self._queue_units = queue_units
        self.state = RestreamState.CONNECTING
        self._bytes_before = 0
        self._session: RtmpClientSession | None = None
        self._dropped_before = 0
        self._reader: Reader | None = None
        self.connects = 0
        self.failures = 0
        self.last_error: str | None = None
        self.live_since: float | None = None
        self.next_attempt_at: float | None = None
        self._samples: deque[tuple[float, int]] = deque(maxlen=16)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    # ---- figures -----------------------------------------------------------------------------

    @property
    def bytes_sent(self) -> int:
        """Bytes handed to the socket during this broadcast, over every connection."""
        session = self._session
        return self._bytes_before + (session.bytes_sent if session is not None else 0)

    @property
    def frames_dropped(self) -> int:
        reader = self._reader
        return self._dropped_before + (reader.frames_discarded if reader is not None else 0)

    def bitrate_kbps(self, now: float | None = None) -> float:
        if self.state is not RestreamState.LIVE or not self._samples:
            return 0.0
        now = time.monotonic() if now is None else now
        self._sample(now)
        oldest = next((s for s in self._samples if now - s[0] <= BITRATE_WINDOW),
                      self._samples[-1])
        t0, b0 = oldest
        t1, b1 = self._samples[-1]
        return round((b1 - b0) * 8 / 1000 / (t1 - t0), 1) if t1 > t0 else 0.0

    def _sample(self, now: float) -> None:
        if not self._samples or now - self._samples[-1][0] >= 0.5:
            self._samples.append((now, self.bytes_sent))

    def status(self) -> RestreamTarget:
        return RestreamTarget(
            id=self.row.id, channel_id=self.row.channel_id, server_url=self.row.server_url,
            key=redact_stream_name(self.row.stream_key), created_at=self.row.created_at,
            state=self.state, bitrate_kbps=self.bitrate_kbps(), bytes_sent=self.bytes_sent,
            frames_dropped=self.frames_dropped, connects=self.connects, failures=self.failures,
            last_error=self.last_error, live_since=self.live_since,
            next_attempt_at=self.next_attempt_at)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"restream-{self.row.id}")

    async def stop(self) -> None:
        """Stop now (target removed, shutdown); a live connection is unpublished politely."""
        self._stopping = True
        self._wake.set()  # a runner pausing between attempts stops at once
        if self._reader is not None:
            self._reader.close()  # the pump sees the end and unpublishes
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 2.0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def _run(self) -> None:
        where = self._url.redacted()
        while not self._stopping and not self.lb.ended:
            if self.failures < FAILED_AFTER:  # a failed target shows failed until it is live
                self.state = RestreamState.CONNECTING
            self.next_attempt_at = None
            try:
                await self._connection()
                if self._stopping or self.lb.ended:
                    break
                raise TargetLostError("the broadcast's media ended")
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, RtmpError, TargetLostError, ssl.SSLError) as exc:
                self._failed(exc, where)
            except Exception as exc:  # a bug here must not end the other targets or ingest
                logger.exception("restream target %d (%s) crashed", self.row.id, where)
                self._failed(exc, where)
            if self._stopping or self.lb.ended:
                break
            delay = min(self._config.retry_cap,
                        self._config.retry_base * 2.0 ** min(max(0, self.failures - 1), 30))
            delay *= random.uniform(0.8, 1.0)  # jitter: targets of one box do not sync up
            self.next_attempt_at = time.time() + delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        self.state = RestreamState.IDLE
        self.live_since = None
        self.next_attempt_at = None

    def _failed(self, exc: BaseException, where: str) -> None:
        self.failures += 1
        self.live_since = None
        message = _describe(exc, self.row.stream_key)
        self.last_error = message
        if self.failures == FAILED_AFTER:
            self.state = RestreamState.FAILED
            self._log("warning", "restream.failed",
                      f"restream target {self.row.id} ({where}) failed {FAILED_AFTER} times in a "
                      f"row: {message}; still retrying every {self._config.retry_cap:g} s",
                      self.row.channel_id)
            if self._bus is not None:  # webhooks report it (restream.failed)
                self._bus.publish(RestreamFailed(
                    channel_id=self.row.channel_id, target_id=self.row.id,
                    server_url=self.row.server_url, error=message, failures=self.failures))
        else:
            self.state = (RestreamState.FAILED if self.failures > FAILED_AFTER
                          else RestreamState.BACKOFF)
            logger.info("[%s] restream target %d (%s): %s", self.row.channel_id, self.row.id,
                        where, message)

    # ---- one connection ----------------------------------------------------------------------

    async def _connection(self) -> None:
        url = self._url
        ctx = self._ssl_context() if url.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.host, url.port, ssl=ctx,
                                    server_hostname=url.host if ctx else None),
            self._config.connect_timeout)
        session = RtmpClientSession(app=url.app, tc_url=url.tc_url, stream_name=url.stream_name)
        self._session = session
        try:
            _flush(session, writer)
            await asyncio.wait_for(_until_publishing(session, reader, writer),
                                   self._config.connect_timeout)
            await self._publish(session, reader, writer)
        finally:
            self._bytes_before += session.bytes_sent
            self._session = None
            writer.close()  # flushes a polite unpublish; a target that does not read is cut
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (TimeoutError, OSError, ssl.SSLError):
                writer.transport.abort()

    async def _publish(self, session: RtmpClientSession, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        hub = self.lb.open_reader(f"restream:{self.row.id}", self._queue_units)
        self._reader = hub
        self.state = RestreamState.LIVE
        self.connects += 1
        self.failures = 0  # last_error stays: the operator sees why the previous one ended
        self.live_since = time.time()
        self._samples.clear()
        if self._stopping or self.lb.ended:
            hub.close()
        receiving = asyncio.get_running_loop().create_task(
            _receive(session, reader, writer), name=f"restream-rx-{self.row.id}")
        pumping = asyncio.get_running_loop().create_task(
            self._pump(hub, session, writer), name=f"restream-tx-{self.row.id}")
        try:
            done, _ = await asyncio.wait({receiving, pumping},
                                         return_when=asyncio.FIRST_COMPLETED)
            # The target's own word (a refusal, a close) first: the pump's error after it is
            # only "cannot send in state ERROR".
            for task in (receiving, pumping):
                if task in done:
                    task.result()  # raises the reason the connection ended
        finally:
            for task in (receiving, pumping):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(receiving, pumping, return_exceptions=True)
            self._dropped_before += hub.frames_discarded
            self._reader = None
            hub.close()

    async def _pump(self, hub: Reader, session: RtmpClientSession,
                    writer: asyncio.StreamWriter) -> None:
        muxer = FlvTagMuxer()
        sent_meta = False
        while (item := await hub.get()) is not None:
            # Take everything already queued in one go: one write and one drain per batch.
            while item is not None:
                if isinstance(item, MediaUnit):
                    tag = muxer.unit(item)
                    if tag is not None:
                        (session.send_video if tag.video else session.send_audio)(
                            tag.timestamp, tag.body)
                elif isinstance(item, CodecConfig):
                    tags = muxer.config(item)
                    if tags or not sent_meta:
                        meta: dict[str, AmfValue] = dict(muxer.metadata())
                        session.send_metadata(meta)
                        sent_meta = True
                    for tag in tags:
                        (session.send_video if tag.video else session.send_audio)(
                            tag.timestamp, tag.body)
                item = hub.get_nowait()
            await self._write(session, writer)
        # The broadcast ended (or the target was removed): unpublish politely.
        session.close()
        with contextlib.suppress(Exception):
            await self._write(session, writer)

    async def _write(self, session: RtmpClientSession, writer: asyncio.StreamWriter) -> None:
        data = session.data_to_send()
        if data:
            writer.write(data)
            self._sample(time.monotonic())
        if writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            try:
                await asyncio.wait_for(writer.drain(), self._config.stall_timeout)
            except TimeoutError:
                raise TargetLostError(
                    f"the target stopped reading for {self._config.stall_timeout:.0f} s") \
                    from None


def _flush(session: RtmpClientSession, writer: asyncio.StreamWriter) -> None:
    data = session.data_to_send()
    if data:
        writer.write(data)


def _check(session: RtmpClientSession) -> bool:
    """Apply the session's events; True once publishing. Raises why the connection ended."""
    started = False
    for event in session.events():
        if isinstance(event, PublishFailed):
            raise event.error
        if isinstance(event, ServerClosed):
            raise TargetLostError("the target closed the connection")
        if isinstance(event, PublishStarted):
            started = True
    return started


async def _until_publishing(session: RtmpClientSession, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(65536)
        session.receive_data(data)
        _flush(session, writer)
        if _check(session):
            return


async def _receive(session: RtmpClientSession, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    """Read the target's messages while publishing (pings, acks, a late refusal)."""
    while True:
        data = await reader.read(65536)
        session.receive_data(data)
        _flush(session, writer)
        _check(session)
        if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            # A target that floods pings but reads nothing would grow our answers without
            # bound (docs/threat-model.md §restream).
            raise TargetLostError("the target sends requests but does not read the answers")


def _describe(exc: BaseException, key: str) -> str:
    if isinstance(exc, TimeoutError):
        text = "timed out (connect, TLS, handshake or publish)"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        text = f"TLS certificate not trusted: {exc.verify_message}"
    elif isinstance(exc, ConnectionRefusedError):
        text = "connection refused"
    else:
        text = str(exc) or type(exc).__name__
    if key and key in text:  # never let an error carry the key (docs/threat-model.md §restream)
        text = text.replace(key, redact_stream_name(key))
    return safe_text(text, 300)


class RestreamService:
    """Owner of every channel's simulcast targets and their runners. Runs on the loop."""

    def __init__(self, store: Store, bus: Bus, channels: ChannelService,
                 config: RestreamConfig, *, queue_units: int | None = None) -> None:
        self.store = store
        self.bus = bus
        self.channels = channels
        self.config = config
        self.queue_units = queue_units or config.queue_units
        """Hub reader capacity of each target (``[restream] queue_units``)."""
        self._rows: dict[str, dict[int, rq.TargetRow]] = {}
        self._runners: dict[int, TargetRunner] = {}
        self._last: dict[int, RestreamTarget] = {}  # figures of runners that stopped
        self._ssl: ssl.SSLContext | None = None
        self._tasks = BackgroundTasks("restream")

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = make_ssl_context(self.config.ca_file)
        return self._ssl

    async def start(self) -> None:
        for row in await self.store.read(rq.list_targets):
            self._rows.setdefault(row.channel_id, {})[row.id] = row
        self._tasks.spawn(self._follow(), "restream-follow")
        for channel_id in list(self._rows):
            self.reconcile(channel_id)

    async def close(self) -> None:
        await self._tasks.close()
        await asyncio.gather(*(r.stop() for r in list(self._runners.values())),
                             return_exceptions=True)
        self._runners.clear()

    async def _follow(self) -> None:
        async with self.bus.subscribe(BroadcastChanged, ChannelChanged) as events:
            async for event in events:
                try:
                    if isinstance(event, ChannelChanged) \
                            and event.reason is ChannelChange.DELETED:
                        await self._forget_channel(event.channel_id)
                    elif isinstance(event, BroadcastChanged):
                        self.reconcile(event.channel_id)
                except Exception:  # one bad event must not stop following broadcasts
                    logger.exception("restream: could not handle %s", type(event).__name__)

    # ---- runners -----------------------------------------------------------------------------

    def reconcile(self, channel_id: str) -> None:
        """Start the runners a live channel lacks; drop those of a broadcast that ended.

        Idempotent; called on every broadcast change of the channel and on target edits.
        A channel in its reconnect grace keeps its runners (they idle on the hub reader).
        """
        lb = self.channels.live_broadcast(channel_id)
        rows = self._rows.get(channel_id, {})
        for target_id, runner in list(self._runners.items()):
            if runner.row.channel_id != channel_id:
                continue
            if runner.done or runner.lb is not lb or target_id not in rows:
                del self._runners[target_id]
                self._remember(runner)
                self._tasks.spawn(runner.stop(), f"restream-stop-{target_id}")
        if lb is None or lb.ended or lb.link is None:
            return  # not publishing: runners start when a publisher arrives
        for row in rows.values():
            if row.id not in self._runners:
                self._start_runner(row, lb)

    def _remember(self, runner: TargetRunner) -> None:
        """Keep a stopped runner's figures (bytes, drops, last error of the last broadcast)."""
        self._last[runner.row.id] = dataclasses.replace(
            runner.status(), state=RestreamState.IDLE, bitrate_kbps=0.0, live_since=None,
            next_attempt_at=None)

    def _start_runner(self, row: rq.TargetRow, lb: LiveBroadcast) -> None:
        try:
            url = parse_rtmp_url(row.server_url, stream_name=row.stream_key)
        except RtmpUrlError as exc:  # stored before a stricter release: show, do not crash
            logger.warning("restream target %d is unusable: %s", row.id, exc)
            return
        runner = TargetRunner(row, url, lb, self.config, self._ssl_context,
                              self.channels.log, self.queue_units, self.bus)
        self._runners[row.id] = runner
        runner.start()

    # ---- targets -----------------------------------------------------------------------------

    def targets(self, channel_id: str) -> list[RestreamTarget]:
        """The channel's targets with their live figures (keys redacted)."""
        out = []
        for row in self._rows.get(channel_id, {}).values():
            runner = self._runners.get(row.id)
            last = self._last.get(row.id)
            if runner is not None:
                status = runner.status()
                out.append(status if not runner.done else dataclasses.replace(
                    status, state=RestreamState.IDLE, bitrate_kbps=0.0))
            elif last is not None:
                out.append(last)
            else:
                out.append(RestreamTarget(
                    id=row.id, channel_id=channel_id, server_url=row.server_url,
                    key=redact_stream_name(row.stream_key), created_at=row.created_at))
        return out

    async def add(self, channel_id: str, url: str, key: str | None = None) -> RestreamTarget:
        """Add a target and, if the channel is live, start publishing to it.

        Raises:
            ChannelNotFound: no such channel.
            RestreamError: a bad URL, no key, or too many targets.
        """
        await self.channels.get_channel(channel_id)
        try:
            parsed = parse_rtmp_url(url, stream_name=key or None)
        except RtmpUrlError as exc:
            raise RestreamError(str(exc)) from None
        if not parsed.stream_name:
            raise RestreamError("no stream key: give it as the URL's last path segment "
                                "(rtmp://host/app/KEY) or separately")
        if len(self._rows.get(channel_id, {})) >= MAX_TARGETS_PER_CHANNEL:
            raise RestreamError(f"a channel can have at most {MAX_TARGETS_PER_CHANNEL} targets")
        now = time.time()
        row = await self.store.write(lambda db: rq.insert_target(
            db, channel_id, parsed.server_url, parsed.stream_name, now))
        self._rows.setdefault(channel_id, {})[row.id] = row
        self.channels.log("info", "restream.added",
                          f"restream target {row.id} added: {parsed.redacted()}", channel_id)
        self.reconcile(channel_id)
        return next(t for t in self.targets(channel_id) if t.id == row.id)

    async def remove(self, channel_id: str, target_id: int) -> None:
        """Remove a target (a live connection to it is unpublished and closed).

        Raises:
            TargetNotFound: the channel has no such target.
        """
        if target_id not in self._rows.get(channel_id, {}):
            raise TargetNotFound(str(target_id))
        await self.store.write(lambda db: rq.delete_target(db, channel_id, target_id))
        row = self._rows[channel_id].pop(target_id)
        self._last.pop(target_id, None)
        runner = self._runners.pop(target_id, None)
        if runner is not None:
            await runner.stop()
        self.channels.log("info", "restream.removed",
                          f"restream target {target_id} removed ({row.server_url})", channel_id)

    async def _forget_channel(self, channel_id: str) -> None:
        self._rows.pop(channel_id, None)
        self.reconcile(channel_id)
        await self.store.write(lambda db: rq.delete_channel_targets(db, channel_id))

