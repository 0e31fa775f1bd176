"""Keep freed heap memory for reuse, for environments that return large observations.

Gymnasium requires fresh observation arrays at every step (``check_env`` refuses observations that
share memory with earlier ones). With glibc's default malloc settings, arrays above ~128 KB are
served by ``mmap`` and given back to the system when freed, and freed memory at the top of the heap
is trimmed, so every step of an environment whose observation holds such arrays pays page faults
for fresh pages. On the VM-rescheduling env at M size (~0.6 MB of observation per step) that halved
the step rate (1,300 vs 2,000 migrations per CPU-second under random masked play).

:func:`keep_freed_heap_memory` raises glibc's mmap threshold (to 32 MB) and trim threshold (to
64 MB) for the process, so such arrays come from, and go back to, the heap and are reused. It keeps
at most the trim threshold of freed memory mapped. It is a no-op off glibc (macOS, Windows, musl)
and when the environment variable ``RLSYS_KEEP_MALLOC_DEFAULTS`` is set (to keep the defaults).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 64 << 20
_applied: bool | None = None


def keep_freed_heap_memory() -> bool:
    """Apply the malloc settings above once per process; True if they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RLSYS_KEEP_MALLOC_DEFAULTS") or platform.system() != "Linux":
        return _applied
    if platform.libc_ver()[0] != "glibc":
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return _applied
    _applied = ok
    return _applied
