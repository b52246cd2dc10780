"""The muxer's usage error, kept out of the compiled ``media.hls.segmenter``.

mypyc compiles a class only from the builtin bases it implements (``Exception``,
``ValueError``...), not ``RuntimeError`` (media/accel.py); defined here, it stays an ordinary
class that the compiled muxer raises.
"""

from __future__ import annotations


class MuxerStateError(RuntimeError):
    """The muxer was used out of order (push before set_config, push after end)."""
