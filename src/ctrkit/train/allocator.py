"""Process-wide malloc settings for training: freed memory stays in the process for reuse.

Why: a training step allocates the same large activations and gradients every step, and glibc
hands blocks of more than a few MB back to the kernel when they are freed (``munmap``, or
trimming the top of the heap). The next step's tensors then fault every 4 KB page in again, and
the kernel zeroes each one: writing a fresh 164 MB tensor took 75 ms here, against 25 ms into
memory the process already had. For the attention and CIN models of the BARS Frappe_x1 configs
(batch 4096, one thread) that was a quarter to a third of the step: AutoInt went from 2,200 to
2,800 samples/s and CIN from 4,400-5,000 to 7,200, measured with the huge-page setting of
``ctrkit/__init__.py`` on in both.

So training asks glibc (``mallopt``) never to serve a block with its own ``mmap`` and not to
trim the heap (unless 2 GB at its top are free). The process keeps the memory of its largest
step until the run ends, when train() hands the free part back (:func:`release_free_memory`).
The price is fragmentation: the peak resident size of a run can be larger (BARS's DESTINE
config, 12 steps: 1.3 GB before, 1.6-2.8 GB after; AFN and FGCNN about the same). Other C
libraries, and ``CTRKIT_MALLOC_REUSE=0`` in the environment, leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any, Callable

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_MAX = -4
_TRIM_AT = 2**31 - 1  # free bytes at the heap top before glibc trims it: the largest int

_applied = False


def _glibc(name: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """glibc's function ``name`` (returning int), or None off glibc or when it cannot be loaded."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


def reuse_wanted() -> bool:
    """True when this process runs on glibc and ``CTRKIT_MALLOC_REUSE`` is not ``0``."""
    return os.environ.get("CTRKIT_MALLOC_REUSE", "1") != "0" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Apply the settings above to this process (once); returns whether they are in effect.

    Returns False, changing nothing, off glibc, with ``CTRKIT_MALLOC_REUSE=0``, or when glibc
    refuses a setting.
    """
    global _applied
    if _applied:
        return True
    mallopt = _glibc("mallopt", [ctypes.c_int, ctypes.c_int]) if reuse_wanted() else None
    if mallopt is None:
        return False
    # Setting either one also stops glibc's own adjustment of its thresholds to freed sizes.
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_AT) == 1
    _applied = ok
    return ok


def release_free_memory() -> bool:
    """Hand the heap's free memory back to the kernel (glibc ``malloc_trim(0)``: the free top of
    the heap, and the free pages inside it). Called when a run ends, so the process does not keep
    its largest step's memory afterwards, and a bench worker's next run measures its own peak.
    Returns whether anything was released; False, doing nothing, off glibc."""
    trim = _glibc("malloc_trim", [ctypes.c_size_t])
    return trim is not None and trim(0) == 1
