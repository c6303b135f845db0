"""Keep the memory torch frees on the CPU for its next allocation, while a network runs.

glibc hands every block over 32 MB back to the kernel (``munmap``) when it is freed and maps
fresh zeroed pages for the next one. A 96^3 window's activations are blocks of 100-400 MB, freed
and allocated again layer after layer and window after window, so the whole-body SegResNet spent a
fifth of its time in page faults (2.39 s a window; 1.84 s with the memory kept). Inside
:func:`reuse_freed_memory` large blocks come from the heap and stay there when freed; on leaving,
the heap's free pages go back to the kernel (``malloc_trim``), so the process does not stay larger
than it was. Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np

# mallopt(3) parameters and glibc's defaults
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_KEEP_ALL = 2**31 - 1  # mallopt takes an int


@cache
def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (present in glibc only)
        return libc
    except (OSError, AttributeError, TypeError):
        return None


@contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[None]:
    """Serve large CPU allocations from a heap that keeps freed blocks; trim it on leaving.

    Parameters
    ----------
    enabled
        False makes it do nothing (GPU runs: their activations are not in this heap).
    """
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        give_back_free_memory()


def give_back_free_memory() -> None:
    """Return the pages of the heap's free blocks to the kernel (``malloc_trim``; glibc only).

    After :func:`reuse_freed_memory` the heap keeps its free blocks, unmapped but listed, and glibc
    serves a later large allocation from one of them rather than from a mapping of its own; freed
    again, that block stays resident until the next trim. A long-lived process (the compute
    worker) calls this after each job so that it idles at the size of what it still holds.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def zeroed_buffer(shape: tuple[int, ...]):
    """A float32 CPU tensor of zeros on a memory mapping of its own, its pages mapped up front.

    For the long-lived buffers of a run (a row of class-score sums, kept probabilities): outside
    the malloc heap, they do not split the heap that :func:`reuse_freed_memory` keeps for the
    network's activations. Mapping all pages in one call (``MAP_POPULATE``) costs 0.5 s per 2 GiB
    on this 2-core VM, against 0.86 s when they fault in one by one as ``torch.zeros`` writes
    them (both several times more when the hypervisor must back the pages afresh). Without
    ``MAP_POPULATE`` (not Linux) it is ``torch.zeros``.
    """
    import torch

    count = int(np.prod(shape))
    populate = getattr(mmap, "MAP_POPULATE", None)
    if populate is None or count == 0:
        return torch.zeros(shape, dtype=torch.float32)
    mapping = mmap.mmap(-1, count * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    # numpy keeps the mapping alive, torch keeps the array: unmapped when the tensor goes
    return torch.from_numpy(np.frombuffer(mapping, dtype=np.float32).reshape(shape))
