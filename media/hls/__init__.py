"""HLS / LL-HLS packaging: fMP4 (CMAF) parts and segments in memory, playlists on demand."""

from __future__ import annotations

from media.hls.playlist import (
    LowLatencyInfo,
    PartEntry,
    RenditionReport,
    SegmentEntry,
    VariantEntry,
    format_program_date_time,
    render_media_playlist,
    render_multivariant_playlist,
    render_rendition_reports,
)
from media.hls.segmenter import HlsMuxer, MuxerStateError, MuxerStats, is_object_name

__all__ = [
    "HlsMuxer",
    "LowLatencyInfo",
    "MuxerStateError",
    "MuxerStats",
    "PartEntry",
    "RenditionReport",
    "SegmentEntry",
    "VariantEntry",
    "format_program_date_time",
    "is_object_name",
    "render_media_playlist",
    "render_multivariant_playlist",
    "render_rendition_reports",
]
