"""Hearth media library: RTMP ingest, H.264/AAC helpers, fMP4 and HLS packaging.

Imports only the standard library (and PyAV/aiortc where stated); never other Hearth packages.
"""

from pathlib import Path as _Path

from media.accel import route as _route

# Before any module of the compiled group is imported: use the group compiled only when its
# build is complete and current (media/accel.py).
_route(_Path(__file__).resolve().parent)
