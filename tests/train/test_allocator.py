"""train()'s malloc settings: large blocks come from the heap and stay there after they are freed.

Each check runs in a fresh interpreter, since the settings are process-wide and one-way.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")

# Allocates and frees a 64 MB tensor, then reports glibc's counts of mmap-served blocks
# (mallinfo2's hblks) and of heap bytes held (arena), before and after.
_PROBE = r"""
import ctypes, json
import ctrkit
import torch
from ctrkit.train.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory()
again = keep_freed_memory()
before = libc.mallinfo2()
t = torch.empty(16 * 2**20)
t.fill_(1.0)
during = libc.mallinfo2()
del t
after = libc.mallinfo2()
print(json.dumps({"applied": applied, "again": again,
                  "mmap_blocks": [before.hblks, during.hblks, after.hblks],
                  "heap_bytes": [before.arena, during.arena, after.arena]}))
"""


def _probe(**env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_blocks_come_from_the_heap_and_stay():
    r = _probe(CTRKIT_MALLOC_REUSE="1")
    assert r["applied"] and r["again"]
    before, during, after = r["mmap_blocks"]
    assert during == before  # the 64 MB block was not given its own mmap
    heap_before, heap_during, heap_after = r["heap_bytes"]
    assert heap_during >= heap_before + 64 * 2**20
    assert heap_after == heap_during  # freed, but not handed back to the kernel


def test_switched_off_leaves_malloc_alone():
    r = _probe(CTRKIT_MALLOC_REUSE="0")
    assert not r["applied"] and not r["again"]
    before, during, after = r["mmap_blocks"]
    assert during == before + 1  # glibc's default: a block this size gets its own mmap
    assert after == before
