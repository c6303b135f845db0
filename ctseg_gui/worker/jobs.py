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
    from ctseg_gui.inference import resolve_model

    volume = volume_from(params["image"], inputs["image"])
    progress("loading the model", 0.0)
    ref = resolve_model(params.get("model_id"), params.get("bundle"), params.get("variant"))
    segment_volume = _segment_volume()
    if segment_volume is None:
        from ctseg_gui.core.errors import CtsegError
        from ctseg_gui.inference.ct_tissues import segment_ct_tissues

        if not ref.builtin:
            raise CtsegError(f"the inference engine is not available to run {ref.name}")
        labels = segment_ct_tissues(volume, progress=progress, cancelled=cancelled)
    else:
        labels = segment_volume(
            volume,
            ref,
            device=params.get("device") or "auto",
            progress=progress,
            cancelled=cancelled,
        )
    info = {"table": labels.table.to_json(), "model": ref.name}
    return {"labels": labels.array}, info


def _segment_volume():
    try:
        from ctseg_gui.inference.engine import segment_volume
    except ModuleNotFoundError as error:
        if error.name != "ctseg_gui.inference.engine":
            raise
        return None
    return segment_volume


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
