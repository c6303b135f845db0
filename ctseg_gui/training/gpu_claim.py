"""Which training run holds the GPU, for the app to tell the user where inference goes.

A run on CUDA writes ``<user data>/training/gpu-claim-<pid>.json`` (run folder, device, start
time) while it runs and removes it when it ends; a claim whose process is gone (a killed run) is
ignored and cleaned up. Qt-free: the GUI asks :func:`gpu_holders` before sending a model job to
the GPU, and runs inference on the CPU (or waits) while the list is not empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from ctseg_gui.core.settings import user_data_dir
from ctseg_gui.launch import pid_alive


def _folder() -> Path:
    return user_data_dir() / "training"


@contextlib.contextmanager
def claim_gpu(run_dir: str | Path, device: str):
    """Record, for the duration of the ``with`` block, that this process trains on ``device``."""
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gpu-claim-{os.getpid()}.json"
    record = {"pid": os.getpid(), "run_dir": str(run_dir), "device": device, "since": time.time()}
    path.write_text(json.dumps(record))
    try:
        yield record
    finally:
        path.unlink(missing_ok=True)


def gpu_holders() -> list[dict]:
    """Live training runs that hold a GPU (``pid``, ``run_dir``, ``device``, ``since``)."""
    holders = []
    folder = _folder()
    for path in sorted(folder.glob("gpu-claim-*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid_alive(pid):
            holders.append(record)
        else:
            path.unlink(missing_ok=True)
    return holders
