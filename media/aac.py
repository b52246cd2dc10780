"""AAC AudioSpecificConfig parsing (ISO/IEC 14496-3 §1.6.2.1) → :class:`AudioConfig`.

Pure functions over bytes. Only the fields packaging needs are decoded: audio object type,
sampling frequency, channel configuration and the GASpecificConfig frameLengthFlag.
"""

from __future__ import annotations

from media.units import AudioConfig

__all__ = ["SAMPLING_FREQUENCIES", "AacError", "build_asc", "parse_asc"]

# ISO/IEC 14496-3 §1.6.3.4 Table 1.18: samplingFrequencyIndex → Hz (0xD, 0xE reserved,
# 0xF = explicit 24-bit frequency follows).
SAMPLING_FREQUENCIES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
ESCAPE_FREQUENCY_INDEX = 0xF
ESCAPE_OBJECT_TYPE = 31
"""§1.6.2.1 GetAudioObjectType(): 31 means 32 + the next 6 bits."""

MAX_SAMPLE_RATE = 768_000
"""Explicit 24-bit rates above this are not audio anyone sends us; treat them as garbage."""

# §1.6.3.5 Table 1.19 (channelConfiguration → channels), incl. the amendment values 11–14.
# 0 means "defined in a program_config_element", which we do not parse.
CHANNELS_BY_CONFIGURATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}

# Object types with a GASpecificConfig we can frame at 1024/960 samples (Table 1.1):
# 1 AAC Main, 2 AAC LC, 3 AAC SSR, 4 AAC LTP. 5 (SBR) and 29 (PS) signal HE-AAC explicitly.
GA_OBJECT_TYPES = frozenset({1, 2, 3, 4})
AOT_SBR = 5
AOT_PS = 29


class AacError(ValueError):
    """Malformed or unsupported AudioSpecificConfig."""


class _Bits:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, n: int) -> int:
        if self._pos + n > len(self._data) * 8:
            raise AacError(
                f"AudioSpecificConfig truncated: needed {n} bits at bit {self._pos} of "
                f"{len(self._data) * 8}"
            )
        value = 0
        for _ in range(n):
            byte = self._data[self._pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def object_type(self) -> int:
        aot = self.u(5)
        return 32 + self.u(6) if aot == ESCAPE_OBJECT_TYPE else aot

    def frequency(self) -> int:
        index = self.u(4)
        if index == ESCAPE_FREQUENCY_INDEX:
            rate = self.u(24)
            if not 0 < rate <= MAX_SAMPLE_RATE:
                raise AacError(f"explicit samplingFrequency {rate} Hz out of range")
            return rate
        if index >= len(SAMPLING_FREQUENCIES):
            raise AacError(f"samplingFrequencyIndex {index:#x} is reserved")
        return SAMPLING_FREQUENCIES[index]


def parse_asc(asc: bytes) -> AudioConfig:
    """Parse an AudioSpecificConfig.

    Explicit SBR/PS signalling (object type 5 or 29, §1.6.2.1) is accepted as given:
    ``object_type`` stays 5/29 (so the codec string reads ``mp4a.40.5``/``mp4a.40.29``) while
    ``sample_rate`` is the core AAC rate, the clock on which each raw frame carries
    ``samples_per_frame`` samples; this is the timing fMP4 needs.

    Args:
        asc: the AudioSpecificConfig bytes (FLV AAC sequence header payload or esds DSI).

    Returns:
        The audio configuration with ``asc`` kept verbatim.

    Raises:
        AacError: if truncated, reserved values are used, the object type is not AAC, or the
            channel layout is only given by a program_config_element (channelConfiguration 0).
    """
    r = _Bits(asc)
    object_type = r.object_type()
    sample_rate = r.frequency()
    channel_configuration = r.u(4)
    core_type = object_type
    if object_type in (AOT_SBR, AOT_PS):
        r.frequency()  # extensionSamplingFrequency: output rate, twice the core rate
        core_type = r.object_type()
    if core_type not in GA_OBJECT_TYPES:
        raise AacError(f"audio object type {core_type} is not supported (AAC 1–4, 5, 29 only)")
    # §4.4.1 GASpecificConfig: frameLengthFlag selects 960- instead of 1024-sample frames.
    frame_length_flag = r.u(1)
    if channel_configuration == 0:
        raise AacError("channelConfiguration 0 (program_config_element) is not supported")
    channels = CHANNELS_BY_CONFIGURATION.get(channel_configuration)
    if channels is None:
        raise AacError(f"channelConfiguration {channel_configuration} is reserved")
    return AudioConfig(
        asc=bytes(asc),
        object_type=object_type,
        sample_rate=sample_rate,
        channels=channels,
        samples_per_frame=960 if frame_length_flag else 1024,
    )


def build_asc(object_type: int, sample_rate: int, channel_configuration: int) -> bytes:
    """Build a minimal AudioSpecificConfig (no extensions, frameLengthFlag 0).

    Raises:
        AacError: if a value does not fit its field.
    """
    if not 1 <= object_type <= 95:
        raise AacError(f"object type {object_type} out of range 1..95")
    if not 0 <= channel_configuration <= 15:
        raise AacError(f"channelConfiguration {channel_configuration} out of range")
    bits: list[tuple[int, int]] = []
    if object_type >= 32:
        bits += [(ESCAPE_OBJECT_TYPE, 5), (object_type - 32, 6)]
    else:
        bits.append((object_type, 5))
    if sample_rate in SAMPLING_FREQUENCIES:
        bits.append((SAMPLING_FREQUENCIES.index(sample_rate), 4))
    elif 0 < sample_rate < 1 << 24:
        bits += [(ESCAPE_FREQUENCY_INDEX, 4), (sample_rate, 24)]
    else:
        raise AacError(f"sample rate {sample_rate} does not fit 24 bits")
    bits += [(channel_configuration, 4), (0, 3)]  # frameLength, dependsOnCoreCoder, extension
    value = 0
    nbits = 0
    for v, n in bits:
        value = (value << n) | v
        nbits += n
    pad = -nbits % 8
    return (value << pad).to_bytes((nbits + pad) // 8, "big")
