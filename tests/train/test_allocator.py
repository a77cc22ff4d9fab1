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
from ctrkit.train.allocator import keep_freed_memory, release_free_memory

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

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
rss_kept = rss()
released = release_free_memory()
rss_released = rss()
print(json.dumps({"applied": applied, "again": again, "released": released, "rss": [rss_kept, rss_released],
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
    kept, released = r["rss"]
    assert r["released"] and released <= kept - 60 * 2**20  # until the run ends


def test_switched_off_leaves_malloc_alone():
    r = _probe(CTRKIT_MALLOC_REUSE="0")
    assert not r["applied"] and not r["again"]
    before, during, after = r["mmap_blocks"]
    assert during == before + 1  # glibc's default: a block this size gets its own mmap
    assert after == before
