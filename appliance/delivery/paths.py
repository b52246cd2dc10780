"""Filesystem paths from validated ids only (docs/threat-model.md §paths).

A broadcast id from a URL is checked against :data:`BROADCAST_ID_RE` *before* any path is
built from it; the file names inside a recording are checked against :data:`VOD_NAME_RE`.
Both allow only ASCII letters, digits, ``-`` and ``_`` (no dot, no slash, no NUL), so neither
``..`` nor an encoded separator can reach :mod:`pathlib`; :func:`recording_dir` then checks
the result is a direct child of the root as a second line of defence.
"""

from __future__ import annotations

import re
from pathlib import Path

BROADCAST_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Ids the delivery layer accepts (a superset of the stream/broadcast ids the model mints)."""

VOD_NAME_RE = re.compile(r"init-(?:0|[1-9][0-9]{0,8})\.mp4|seg-(?:0|[1-9][0-9]{0,8})\.m4s")
"""The only object names inside a recording directory served over HTTP."""

RECORDINGS = "recordings"
THUMBNAILS = "thumbnails"


class InvalidId(ValueError):
    """An id or object name that is not one of ours (never reaches the filesystem)."""


def check_id(broadcast_id: str) -> str:
    """Return ``broadcast_id`` if it is well formed, else raise :class:`InvalidId`."""
    if not isinstance(broadcast_id, str) or not BROADCAST_ID_RE.fullmatch(broadcast_id):
        raise InvalidId("malformed broadcast id")
    return broadcast_id


def is_vod_name(name: str) -> bool:
    return isinstance(name, str) and len(name) <= 24 and VOD_NAME_RE.fullmatch(name) is not None


def _child(root: Path, name: str) -> Path:
    path = root / name
    if path.parent != root or path.name != name:
        raise InvalidId("path escapes its root")
    return path


def recording_dir(data_dir: Path, broadcast_id: str) -> Path:
    """``<data dir>/recordings/<id>`` for a validated id."""
    return _child(data_dir / RECORDINGS, check_id(broadcast_id))


def thumbnail_path(data_dir: Path, broadcast_id: str) -> Path:
    """``<data dir>/thumbnails/<id>.jpg`` for a validated id."""
    return _child(data_dir / THUMBNAILS, check_id(broadcast_id) + ".jpg")


def vod_object_path(data_dir: Path, broadcast_id: str, name: str) -> Path:
    """A segment or init file of a recording; raises :class:`InvalidId` for any other name."""
    if not is_vod_name(name):
        raise InvalidId("not a recording object name")
    return _child(recording_dir(data_dir, broadcast_id), name)
