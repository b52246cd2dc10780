"""MPEG transport stream ingest (SRT carries it): a sans-IO demuxer and its depacketizer."""

from media.ts.demux import (
    ElementaryStream,
    PesFrame,
    ProgramChanged,
    TsDemuxer,
    TsError,
    TsEvent,
    TsProblem,
)
from media.ts.units import TsDepacketizer

__all__ = [
    "ElementaryStream",
    "PesFrame",
    "ProgramChanged",
    "TsDemuxer",
    "TsDepacketizer",
    "TsError",
    "TsEvent",
    "TsProblem",
]
