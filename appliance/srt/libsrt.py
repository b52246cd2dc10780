"""A ctypes binding to the few libsrt calls Hearth needs (SRT 1.5, Debian ``libsrt1.5-*``).

Why ctypes and not FFmpeg's (PyAV's) ``srt://`` listener: FFmpeg accepts one caller per
listener, cannot look at the caller's ``streamid`` before accepting it, and blocks a thread per
connection. libsrt itself offers ``srt_listen_callback`` (reject a wrong key in the handshake,
before any media flows) and ``srt_epoll`` (many publishers on one UDP port, one thread).
No maintained SRT package exists on PyPI. Only the C API's stable parts are used; the numeric
constants are from ``srtcore/srt.h`` and ``srtcore/access_control.h`` of SRT 1.5.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import threading

LIBRARY_NAMES = ("libsrt.so.1.5", "libsrt-gnutls.so.1.5", "libsrt-openssl.so.1.5")
"""Debian ships the same API in two TLS flavours (``libsrt1.5-gnutls`` / ``-openssl``)."""

SRTSOCKET = ctypes.c_int
INVALID_SOCK = -1

# SRT_SOCKOPT (srt.h)
SRTO_RCVSYN = 2
SRTO_REUSEADDR = 15
SRTO_LATENCY = 23
SRTO_PASSPHRASE = 26
SRTO_STREAMID = 46
SRTO_PAYLOADSIZE = 49
SRTO_PEERIDLETIMEO = 55
# SRT_EPOLL_OPT
SRT_EPOLL_IN = 0x1
SRT_EPOLL_ERR = 0x8
# SRT_ERRNO: non-blocking receive found nothing to read
SRT_EASYNCRCV = 6002
# SRT_SOCKSTATUS
SRTS_CONNECTED = 5
# access_control.h: rejection reasons a listener callback may set (HTTP codes + 1000)
SRT_REJX_BAD_REQUEST = 1400
SRT_REJX_UNAUTHORIZED = 1401
SRT_REJX_OVERLOAD = 1402
SRT_REJX_BAD_MODE = 1405
# sys/syslog.h levels for srt_setloglevel
LOG_CRIT = 2

MAX_STREAMID = 512
"""SRT limits the stream id to 512 bytes (srt.h ``SRT_STREAMID_MAX``)."""
MAX_PAYLOAD = 1500


class SrtError(OSError):
    """A libsrt call failed; the message is libsrt's own."""


class SrtPortInUse(SrtError):
    """The UDP port is taken (by another program, or another Hearth)."""


class SrtUnavailable(SrtError):
    """No libsrt 1.5 shared library is installed."""


class EpollEvent(ctypes.Structure):
    _fields_ = [("fd", SRTSOCKET), ("events", ctypes.c_int)]


LISTEN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, SRTSOCKET, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.c_char_p)
"""``int srt_listen_callback_fn(void* opaque, SRTSOCKET ns, int hsversion,
const struct sockaddr* peeraddr, const char* streamid)``: 0 accepts, -1 rejects."""

_lib: ctypes.CDLL | None = None
_lock = threading.Lock()


def load() -> ctypes.CDLL:
    """The libsrt library with its prototypes set (loaded once).

    Raises:
        SrtUnavailable: if none of :data:`LIBRARY_NAMES` can be loaded.
    """
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        errors = []
        found = ctypes.util.find_library("srt")
        for name in (*LIBRARY_NAMES, *((found,) if found else ())):
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError as exc:
                errors.append(str(exc))
        else:
            raise SrtUnavailable(
                "libsrt 1.5 is not installed (apt-get install libsrt1.5-gnutls): "
                + "; ".join(errors[:1]))
        _prototypes(lib)
        lib.srt_startup()
        lib.srt_setloglevel(LOG_CRIT)  # rejections are logged (and throttled) by Hearth
        _lib = lib
        return lib


def _prototypes(lib: ctypes.CDLL) -> None:
    c_int, c_void_p, c_char_p = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    p_int = ctypes.POINTER(c_int)
    table: dict[str, tuple[type | None, list[type]]] = {
        "srt_startup": (c_int, []),
        "srt_setloglevel": (None, [c_int]),
        "srt_create_socket": (SRTSOCKET, []),
        "srt_bind": (c_int, [SRTSOCKET, c_void_p, c_int]),
        "srt_listen": (c_int, [SRTSOCKET, c_int]),
        "srt_listen_callback": (c_int, [SRTSOCKET, LISTEN_CALLBACK, c_void_p]),
        "srt_accept": (SRTSOCKET, [SRTSOCKET, c_void_p, p_int]),
        "srt_close": (c_int, [SRTSOCKET]),
        "srt_getsockname": (c_int, [SRTSOCKET, c_void_p, p_int]),
        "srt_setsockflag": (c_int, [SRTSOCKET, c_int, c_void_p, c_int]),
        "srt_getsockflag": (c_int, [SRTSOCKET, c_int, c_void_p, p_int]),
        "srt_setrejectreason": (c_int, [SRTSOCKET, c_int]),
        "srt_recvmsg": (c_int, [SRTSOCKET, c_void_p, c_int]),
        "srt_getsockstate": (c_int, [SRTSOCKET]),
        "srt_getlasterror": (c_int, [p_int]),
        "srt_getlasterror_str": (c_char_p, []),
        "srt_epoll_create": (c_int, []),
        "srt_epoll_add_usock": (c_int, [c_int, SRTSOCKET, p_int]),
        "srt_epoll_remove_usock": (c_int, [c_int, SRTSOCKET]),
        "srt_epoll_uwait": (c_int, [c_int, ctypes.POINTER(EpollEvent), c_int,
                                    ctypes.c_int64]),
        "srt_epoll_release": (c_int, [c_int]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def last_error(lib: ctypes.CDLL) -> tuple[int, str]:
    """(SRT_ERRNO, message) of the calling thread's last failed call."""
    code = lib.srt_getlasterror(None)
    text = lib.srt_getlasterror_str()
    return code, (text or b"").decode("utf-8", "replace")


def check(lib: ctypes.CDLL, result: int, what: str) -> int:
    if result < 0:
        raise SrtError(f"{what}: {last_error(lib)[1]}")
    return result


def sockaddr(host: str, port: int) -> bytes:
    """A ``struct sockaddr_in``/``sockaddr_in6`` for ``srt_bind`` (Linux layout)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    packed = socket.inet_pton(family, host)
    if family == socket.AF_INET:
        return struct.pack("=H", family) + struct.pack("!H4s8x", port, packed)
    return struct.pack("=H", family) + struct.pack("!HI16sI", port, 0, packed, 0)


def parse_sockaddr(data: bytes) -> tuple[str, int]:
    """(host, port) from a ``struct sockaddr`` of either family; ("?", 0) for others."""
    if len(data) < 8:
        return "?", 0
    (family,) = struct.unpack_from("=H", data)
    (port,) = struct.unpack_from("!H", data, 2)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, data[4:8]), port
    if family == socket.AF_INET6 and len(data) >= 24:
        host = socket.inet_ntop(socket.AF_INET6, data[8:24])
        return (host[7:] if host.startswith("::ffff:") and "." in host else host), port
    return "?", 0


def set_int(lib: ctypes.CDLL, sock: int, option: int, value: int, what: str) -> None:
    """Set an int option (libsrt also takes an int for its bool options, since 1.3)."""
    v = ctypes.c_int(value)
    check(lib, lib.srt_setsockflag(sock, option, ctypes.byref(v), ctypes.sizeof(v)), what)


def set_string(lib: ctypes.CDLL, sock: int, option: int, value: bytes, what: str) -> None:
    buf = ctypes.create_string_buffer(value, len(value))
    check(lib, lib.srt_setsockflag(sock, option, buf, len(value)), what)


def get_string(lib: ctypes.CDLL, sock: int, option: int, size: int = MAX_STREAMID + 1) -> bytes:
    buf = ctypes.create_string_buffer(size)
    n = ctypes.c_int(size)
    if lib.srt_getsockflag(sock, option, buf, ctypes.byref(n)) < 0:
        return b""
    return buf.raw[:max(0, min(n.value, size))]


def sock_port(lib: ctypes.CDLL, sock: int) -> int:
    buf = ctypes.create_string_buffer(128)
    n = ctypes.c_int(128)
    check(lib, lib.srt_getsockname(sock, buf, ctypes.byref(n)), "srt_getsockname")
    return parse_sockaddr(buf.raw[:n.value])[1]


def epoll_events(count: int) -> ctypes.Array[EpollEvent]:
    return (EpollEvent * count)()
