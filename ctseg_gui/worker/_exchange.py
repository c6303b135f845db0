"""Big arrays between the app and the compute worker, through memory-mapped ``.npy`` files.

The client owns one exchange folder per process. On Linux it lies in ``/dev/shm`` (RAM-backed, so
a mapped file *is* shared memory) whenever that has room; elsewhere, or when ``/dev/shm`` is small
(Docker gives 64 MB), it lies in the temp folder. We chose files over
``multiprocessing.shared_memory`` because a too-small ``/dev/shm`` turns a write into SIGBUS
instead of an error, and because attaching a ``SharedMemory`` in a child registers it with a
resource tracker that unlinks the parent's segment when the child dies (before Python 3.13). The
``.npy`` header carries dtype and shape, so only a path crosses the pipe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ctseg_gui.launch import pid_alive

_PREFIX = "ctseg-exchange-"
_SHM = Path("/dev/shm")
# Keep this much of /dev/shm free for everybody else.
_SHM_RESERVE = 256 * 1024**2


def write_array(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` as ``.npy`` (one copy through the page cache, no pickling)."""
    array = np.asarray(array)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    if array.size:
        out[...] = array
    out.flush()
    del out
    return path


def map_array(path: str | Path) -> np.ndarray:
    """A read-only view of an exchanged array, mapped rather than read."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def read_array(path: str | Path) -> np.ndarray:
    """An in-memory copy of an exchanged array (the file can then be removed)."""
    mapped = map_array(path)
    array = np.array(mapped, copy=True)
    del mapped  # unmap before the caller deletes the file (required on Windows)
    return array


class ExchangeFolder:
    """The client's folders for job files: RAM-backed when possible, removed on :meth:`close`."""

    def __init__(self) -> None:
        self._roots: dict[str, Path] = {}
        _remove_stale_folders()

    def job_folder(self, job_id: int, nbytes: int) -> Path:
        """A fresh folder for one job that will exchange about ``nbytes`` bytes."""
        kind = "shm" if _shm_has_room(nbytes) else "disk"
        root = self._roots.get(kind)
        if root is None:
            base = str(_SHM) if kind == "shm" else None
            root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))
            self._roots[kind] = root
        folder = root / f"job-{job_id}"
        folder.mkdir()
        return folder

    def close(self) -> None:
        """Remove every folder this client made."""
        for root in self._roots.values():
            shutil.rmtree(root, ignore_errors=True)
        self._roots.clear()


def remove_folder(folder: Path | None) -> None:
    """Remove one job's files; tolerant of files still mapped elsewhere."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _shm_has_room(nbytes: int) -> bool:
    if not _SHM.is_dir():
        return False
    try:
        stats = os.statvfs(_SHM)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize > 2 * nbytes + _SHM_RESERVE


def _remove_stale_folders() -> None:
    """Delete exchange folders left behind by app processes that no longer run."""
    for base in (_SHM, Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            for folder in base.glob(f"{_PREFIX}*"):
                pid = folder.name[len(_PREFIX) :].split("-", 1)[0]
                if pid.isdigit() and not pid_alive(int(pid)):
                    shutil.rmtree(folder, ignore_errors=True)
