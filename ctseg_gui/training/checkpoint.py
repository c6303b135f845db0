"""Checkpoints of a run, written atomically so a kill at any moment leaves the last one whole.

``RUN_DIR/checkpoint.pt`` holds everything a resume needs: network, optimiser, schedule and
gradient-scaler states, the iteration and epoch counters, the best validation so far and the
early-stop count. ``RUN_DIR/best.pt`` holds the network weights with the best mean validation
Dice (what the exported bundle ships).
"""

from __future__ import annotations

import os
from pathlib import Path

from ctseg_gui.core.errors import CtsegError

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


def atomic_save(obj, path: Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, synced, then renamed over ``path``."""
    import torch

    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def load_checkpoint(run_dir: Path) -> dict:
    """The last checkpoint of ``run_dir``; a clear error when there is none or it is damaged."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CtsegError("no checkpoint to resume from (was the run ever started?)", run_dir)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is the same problem
        raise CtsegError(f"checkpoint is damaged ({error})", path) from error


def plain_state(network) -> dict:
    """The network's state dict without a DDP ``module.`` wrapper, on the CPU."""
    module = getattr(network, "module", network)
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
