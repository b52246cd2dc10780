"""The on-disk format of a recording, and reading it back (also after ``kill -9``).

A recording is a directory ``<data dir>/recordings/<broadcast id>/`` holding:

* ``init-K.mp4`` and ``seg-N.m4s``: the fMP4 init and media segments exactly as the live
  playlist served them, each written to a temporary name and renamed once complete;
* ``index.jsonl``: one JSON object per *durable* segment, appended (and fsynced) only after
  the segment file was renamed into place: ``{"seg", "init", "duration", "disc", "bytes",
  "pdt"}``. Append-only, so a crash can at worst tear the last line, which is ignored;
* ``meta.json``: ``{"broadcast_id", "state", "started_at", "ended_at", "error"}`` with state
  ``recording`` → ``complete`` (or ``failed``), rewritten atomically;
* optionally ``poster.jpg``, ``download.mp4`` (the cached MP4 remux) and ``keep`` (an empty
  marker: exempt from retention).

After ``kill -9`` the index lists every segment that was completely written, so the recording
plays up to its last closed segment; :func:`finalise_interrupted` marks such recordings
complete on the next start (RFC 8216 §6.2.1: a VOD playlist never changes once complete).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.delivery.paths import BROADCAST_ID_RE, RECORDINGS, is_vod_name
from appliance.delivery.storage import TMP_SUFFIX, Storage

logger = logging.getLogger(__name__)

INDEX = "index.jsonl"
META = "meta.json"
POSTER = "poster.jpg"
KEEP = "keep"
"""Marker file: the operator exempted this recording from retention (``hearth recording keep``)."""
DOWNLOAD = "download.mp4"

MAX_INDEX_BYTES = 64 << 20
"""An index larger than this is not ours (≈ 500 000 segments, i.e. 11 days of 2 s segments)."""
MAX_SEGMENT_SECONDS = 600.0

STATE_RECORDING = "recording"
STATE_COMPLETE = "complete"
STATE_FAILED = "failed"
STATES = (STATE_RECORDING, STATE_COMPLETE, STATE_FAILED)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One durable segment of a recording."""

    seg: str
    init: str
    duration: float
    discontinuity: bool
    size: int
    program_date_time: float
    independent: bool = True
    """Starts with a keyframe (a forced cut in a long GOP does not)."""

    def to_line(self) -> bytes:
        obj: dict[str, object] = {"seg": self.seg, "init": self.init,
                                  "duration": round(self.duration, 6), "disc": self.discontinuity,
                                  "bytes": self.size, "pdt": round(self.program_date_time, 3)}
        if not self.independent:
            obj["indep"] = False
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode()

    @classmethod
    def maybe_parse(cls, line: bytes) -> IndexEntry | None:
        """Parse one index line; None for a torn or foreign line (never raises)."""
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        seg, init, dur = obj.get("seg"), obj.get("init"), obj.get("duration")
        disc, size, pdt = obj.get("disc", False), obj.get("bytes"), obj.get("pdt", 0.0)
        indep = obj.get("indep", True)
        if not isinstance(indep, bool):
            return None
        if not (isinstance(seg, str) and is_vod_name(seg) and seg.startswith("seg-")
                and isinstance(init, str) and is_vod_name(init) and init.startswith("init-")):
            return None
        if isinstance(dur, bool) or not isinstance(dur, int | float):
            return None
        if not (math.isfinite(dur) and 0 < dur <= MAX_SEGMENT_SECONDS):
            return None
        if not isinstance(disc, bool) or isinstance(size, bool) or not isinstance(size, int):
            return None
        if size <= 0 or isinstance(pdt, bool) or not isinstance(pdt, int | float):
            return None
        if not math.isfinite(pdt):
            return None
        return cls(seg, init, float(dur), disc, size, float(pdt), indep)


@dataclass(frozen=True, slots=True)
class Meta:
    broadcast_id: str
    state: str
    started_at: float
    ended_at: float | None = None
    error: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps({"broadcast_id": self.broadcast_id, "state": self.state,
                           "started_at": self.started_at, "ended_at": self.ended_at,
                           "error": self.error}).encode()

    @classmethod
    def maybe_read(cls, path: Path) -> Meta | None:
        try:
            raw = path.read_bytes()
            if len(raw) > 65536:
                return None
            obj = json.loads(raw)
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        bid, state, started = obj.get("broadcast_id"), obj.get("state"), obj.get("started_at")
        ended, error = obj.get("ended_at"), obj.get("error", "")
        if not (isinstance(bid, str) and BROADCAST_ID_RE.fullmatch(bid) and state in STATES):
            return None
        if isinstance(started, bool) or not isinstance(started, int | float):
            return None
        if ended is not None and (isinstance(ended, bool) or not isinstance(ended, int | float)):
            return None
        return cls(bid, str(state), float(started),
                   None if ended is None else float(ended), error if isinstance(error, str) else "")


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording as read from disk: what a VOD playlist or a download is built from."""

    directory: Path
    meta: Meta
    entries: tuple[IndexEntry, ...]

    @property
    def broadcast_id(self) -> str:
        return self.meta.broadcast_id

    @property
    def duration(self) -> float:
        return sum(e.duration for e in self.entries)

    @property
    def size(self) -> int:
        inits = {e.init for e in self.entries}
        size = sum(e.size for e in self.entries)
        for name in inits:
            try:
                size += (self.directory / name).stat().st_size
            except OSError:
                pass
        return size

    @property
    def complete(self) -> bool:
        return self.meta.state != STATE_RECORDING

    @property
    def kept(self) -> bool:
        return (self.directory / KEEP).exists()


def read_entries(directory: Path) -> list[IndexEntry]:
    """Durable segments, in order: parsed index lines whose files exist with their size."""
    path = directory / INDEX
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            logger.warning("recording index %s is too large; ignored", path)
            return []
        raw = path.read_bytes()
    except OSError:
        return []
    entries: list[IndexEntry] = []
    seen: set[str] = set()
    inits: dict[str, bool] = {}
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        entry = IndexEntry.maybe_parse(line)
        if entry is None or entry.seg in seen:
            continue
        try:
            if (directory / entry.seg).stat().st_size != entry.size:
                continue
        except OSError:
            continue
        if entry.init not in inits:
            inits[entry.init] = (directory / entry.init).is_file()
        if not inits[entry.init]:
            continue
        seen.add(entry.seg)
        entries.append(entry)
    return entries


def load(directory: Path) -> Recording | None:
    """Read a recording directory; None when it has no valid ``meta.json``."""
    meta = Meta.maybe_read(directory / META)
    if meta is None or meta.broadcast_id != directory.name:
        return None
    return Recording(directory, meta, tuple(read_entries(directory)))


def list_recordings(data_dir: Path) -> list[Recording]:
    """Every valid recording under ``<data dir>/recordings`` (blocking: call off the loop)."""
    root = data_dir / RECORDINGS
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for name in names:
        if not BROADCAST_ID_RE.fullmatch(name):
            continue
        rec = load(root / name)
        if rec is not None:
            out.append(rec)
    return out


def finalise_interrupted(data_dir: Path, storage: Storage, *,
                         keep_open: frozenset[str] = frozenset()) -> list[Recording]:
    """Mark recordings left ``recording`` by a crash as complete; remove torn temporaries.

    Blocking (call off the loop), at start before any recorder runs. ``keep_open`` names
    broadcasts whose recorder is running in this process (never touched). Returns the
    recordings it finalised.
    """
    done = []
    for rec in list_recordings(data_dir):
        if rec.meta.state != STATE_RECORDING or rec.broadcast_id in keep_open:
            continue
        for name in os.listdir(rec.directory):
            if name.endswith(TMP_SUFFIX):
                storage.remove(rec.directory / name)
        last = rec.entries[-1] if rec.entries else None
        ended = (last.program_date_time + last.duration) if last else rec.meta.started_at
        meta = Meta(rec.broadcast_id, STATE_COMPLETE, rec.meta.started_at,
                    ended or time.time(), "recovered after an unclean shutdown")
        storage.write_atomic(rec.directory / META, meta.to_bytes())
        done.append(Recording(rec.directory, meta, rec.entries))
        logger.info("recording %s finalised after an unclean shutdown (%d segments, %.1f s)",
                    rec.broadcast_id, len(rec.entries), rec.duration)
    return done
