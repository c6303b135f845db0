"""The jobs the compute worker runs (see ``server.JOBS``).

Each job is ``fn(request, inputs, progress, cancelled) -> (outputs, info)``: ``request`` is the
typed request the client built (:mod:`ctseg_gui.worker.requests`), ``inputs`` and
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
from ctseg_gui.worker.requests import (
    CheckBackendsRequest,
    ClicksRequest,
    EchoRequest,
    EstimateRequest,
    ImageGeometry,
    SegmentRequest,
    StatusRequest,
    WarmUpRequest,
)

Progress = Callable[[str, float], None]
Cancelled = Callable[[], bool]


# The worker-side Volume of the image the server holds, so that jobs on the same image (clicks)
# see the same object and the models' per-image caches stay warm: (key, Volume).
_VOLUME: list[tuple[str, Volume]] = []


def volume_from(geometry: ImageGeometry, array: np.ndarray, key: str | None = None) -> Volume:
    """Rebuild the app's volume in the worker around its voxels (the same object per ``key``)."""
    if key is not None and _VOLUME and _VOLUME[0][0] == key and _VOLUME[0][1].array is array:
        return _VOLUME[0][1]
    volume = geometry.volume(array)
    if key is not None:
        _VOLUME[:] = [(key, volume)]
    return volume


def segment(
    request: SegmentRequest, inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run a model on ``inputs["image"]``; outputs ``labels`` plus the label table in ``info``."""
    from ctseg_gui.core.modality import require_ct
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.engine import segment_volume

    volume = volume_from(request.image, inputs["image"], request.image_key)
    require_ct(volume)
    progress("loading the model", 0.0)
    ref = resolve_model(request.model_id, request.bundle, request.variant)
    labels = segment_volume(
        volume,
        ref,
        device=request.device or "auto",
        precision=request.precision or "auto",
        backend=request.backend or "torch",
        progress=progress,
        cancelled=cancelled,
    )
    info = {
        "table": labels.table.to_json(),
        "model": ref.name,
        "run_info": getattr(labels, "run_info", None),
    }
    if labels.provenance is not None:
        info["provenance"] = labels.provenance.to_json()
    return {"labels": labels.array}, info


def estimate(
    request: EstimateRequest,
    inputs: dict[str, np.ndarray],
    progress: Progress,
    cancelled: Cancelled,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Predicted peak memory and time of a segmentation (the engine's ``estimate_resources``).

    Runs here, not in the app, because planning a bundle loads torch and MONAI. Only the image
    geometry and shape travel: the estimate never looks at voxels, so a zero-stride array
    stands in for them.
    """
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.engine import estimate_resources

    stand_in = np.broadcast_to(np.int16(0), tuple(request.shape))
    volume = volume_from(request.image, stand_in)
    ref = resolve_model(request.model_id, request.bundle, request.variant)
    return {}, estimate_resources(volume, ref, request.device or "auto")


def check_backends(
    request: CheckBackendsRequest,
    inputs: dict[str, np.ndarray],
    progress: Progress,
    cancelled: Cancelled,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Export the model for each installed backend and check it against torch float32.

    Exports and compiles with progress, records the parity check that ``backend="auto"`` chooses
    from, and returns it as ``info["results"]``.
    """
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.backends.model_check import check_model_backends

    volume = volume_from(request.image, inputs["image"], request.image_key)
    ref = resolve_model(request.model_id, request.bundle, request.variant)
    progress("checking backends", 0.0)
    results = check_model_backends(
        volume,
        ref,
        device=request.device or "auto",
        windows=int(request.windows or 2),
        progress=progress,
    )
    return {}, {"results": results, "model": ref.name}


def clicks(
    request: ClicksRequest, inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One click refinement with a Deepgrow / DeepEdit bundle (the network stays warm).

    Inputs ``image`` and ``mask``. Outputs ``values`` (the new mask inside
    ``info["region"]``, a list of ``(start, stop)`` per array axis).
    """
    from ctseg_gui.interactive.clicks import Click
    from ctseg_gui.interactive.deep import refine_with_model

    volume = volume_from(request.image, inputs["image"], request.image_key)
    progress("refining", 0.0)
    click_list = [Click(tuple(index), bool(positive)) for index, positive in request.clicks]
    device = request.device or "auto"
    if device == "auto":
        from ctseg_gui.inference.engine import resolve_device

        device = str(resolve_device("auto"))
    region, values = refine_with_model(
        volume,
        np.asarray(inputs["mask"], dtype=bool),
        click_list,
        request.bundle,
        device,
        backend=request.backend or "torch",
    )
    shape = volume.array.shape
    info = {"region": [r.indices(n)[:2] for r, n in zip(region, shape, strict=True)]}
    return {"values": np.asarray(values, dtype=bool)}, info


def echo(
    request: EchoRequest, inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Health check: return every input unchanged, with its checksum computed in the worker."""
    progress("echo", 0.5)
    info = {
        name: {"dtype": str(a.dtype), "shape": list(a.shape), "sum": float(np.sum(a, dtype=float))}
        for name, a in inputs.items()
    }
    return {name: np.asarray(a) for name, a in inputs.items()}, info


def status(
    request: StatusRequest, inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """What the worker holds: whether torch is loaded and which networks are warm."""
    import sys

    bundle = sys.modules.get("ctseg_gui.inference.bundle")
    networks = getattr(bundle, "_NETWORKS", {}) if bundle is not None else {}
    warm = [
        {"bundle": key[0], "variant": key[1], "device": key[-1], "object_id": id(network)}
        for key, network in networks.items()
    ]
    deep = sys.modules.get("ctseg_gui.interactive.deep")
    refiners = getattr(deep, "_WARM", {}) if deep is not None else {}
    clicks = [{"bundle": key[0], "object_id": id(r)} for key, r in refiners.items()]
    return {}, {"torch_loaded": "torch" in sys.modules, "networks": warm, "click_models": clicks}


def warm_up(
    request: WarmUpRequest, inputs: dict[str, np.ndarray], progress: Progress, cancelled: Cancelled
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
