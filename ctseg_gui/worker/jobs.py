"""The jobs the compute worker runs (see ``server.JOBS``).

Each job is ``fn(params, inputs, progress, cancelled) -> (outputs, info)``: ``inputs`` and
``outputs`` map names to numpy arrays (memory-mapped on the way in), ``progress(stage, fraction)``
reports, ``cancelled()`` is polled by the job, which raises
:class:`~ctseg_gui.inference.errors.JobCancelled` when it returns true. They run inside the worker
process only, so they may import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ctseg_gui.core.volume import Volume

Progress = Callable[[str, float], None]
Cancelled = Callable[[], bool]


def volume_params(volume: Volume) -> dict[str, Any]:
    """The geometry of ``volume`` as job parameters (its voxels travel separately)."""
    return {
        "spacing": tuple(volume.spacing),
        "origin": tuple(volume.origin),
        "direction": np.asarray(volume.direction).tolist(),
        "metadata": dict(volume.metadata),
    }


def volume_from(params: dict[str, Any], array: np.ndarray) -> Volume:
    """Rebuild the app's volume in the worker around the mapped voxels."""
    return Volume(
        array,
        params["spacing"],
        params["origin"],
        np.asarray(params["direction"], dtype=float),
        dict(params.get("metadata", {})),
    )


def segment(
    params: dict[str, Any], inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run a model on ``inputs["image"]``; outputs ``labels`` plus the label table in ``info``.

    ``params``: the image geometry (:func:`volume_params`), ``model_id``, ``bundle``, ``variant``,
    ``device``.
    """
    from ctseg_gui.core.modality import require_ct
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.engine import segment_volume

    volume = volume_from(params["image"], inputs["image"])
    require_ct(volume)
    progress("loading the model", 0.0)
    ref = resolve_model(params.get("model_id"), params.get("bundle"), params.get("variant"))
    labels = segment_volume(
        volume,
        ref,
        device=params.get("device") or "auto",
        progress=progress,
        cancelled=cancelled,
    )
    info = {"table": labels.table.to_json(), "model": ref.name}
    return {"labels": labels.array}, info


def echo(
    params: dict[str, Any], inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Health check: return every input unchanged, with its checksum computed in the worker."""
    progress("echo", 0.5)
    info = {
        name: {"dtype": str(a.dtype), "shape": list(a.shape), "sum": float(np.sum(a, dtype=float))}
        for name, a in inputs.items()
    }
    return {name: np.asarray(a) for name, a in inputs.items()}, info


def status(
    params: dict[str, Any], inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """What the worker holds: whether torch is loaded and which networks are warm."""
    import sys

    bundle = sys.modules.get("ctseg_gui.inference.bundle")
    networks = getattr(bundle, "_NETWORKS", {}) if bundle is not None else {}
    warm = [
        {"bundle": key[0], "variant": key[1], "device": key[-1], "object_id": id(network)}
        for key, network in networks.items()
    ]
    return {}, {"torch_loaded": "torch" in sys.modules, "networks": warm}


def warm_up(
    params: dict[str, Any], inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Import torch, MONAI and the engine now, so the user's first model run does not wait."""
    progress("loading torch", 0.0)
    import torch

    if cancelled():
        return {}, {}
    progress("loading MONAI", 0.5)
    import monai  # noqa: F401

    info = {"torch": torch.__version__, "cuda": bool(torch.cuda.is_available())}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return {}, info
