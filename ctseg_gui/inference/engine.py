"""Run a model on a CT: ``segment_volume(volume, model_ref) -> LabelMap`` on the input grid.

Pipeline for a bundle: parse the config (cached), pick the device, preprocess with our fast path
(or the bundle's own MONAI chain for transforms we do not know), slide the network window by window
with slab-wise stitching, then bring the labels back onto the input grid: nearest neighbour on the
labels when the bundle takes the argmax first (or always for many classes), linear interpolation of
the class probabilities slab by slab when the bundle inverts probabilities before its argmax.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegWarning
from ctseg_gui.core.labels import LabelMap, LabelTable, smallest_label_dtype
from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.errors import BundleError, JobCancelled
from ctseg_gui.inference.modelref import ModelRef

Progress = Callable[[str, float], None]

# Above this many classes x voxels (float32 probabilities kept for the linear inversion) we take
# the argmax first and resample labels instead: the difference is a voxel at some boundaries, the
# memory saved is gigabytes.
PROBABILITY_BUDGET_BYTES = 1 << 30

_PLANS: dict = {}
_SECONDS_PER_WINDOW: dict = {}


# Packages MONAI imports at start-up, each for a feature a model run never uses: ignite (its
# training and evaluation engines), matplotlib (notebook plotting), scipy.signal (an ultrasound
# transform). They are 1.4 s of its 3.3 s import.
UNUSED_BY_MODEL_RUNS = ("ignite", "matplotlib", "scipy.signal")


class _SkipImports:
    """Import hook: the named packages (and their submodules) look absent while it is installed.

    MONAI imports optional packages through ``optional_import``, which records an absent one as
    unavailable and carries on; only the features that need it then refuse to run.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == name or fullname.startswith(name + ".") for name in self.names):
            raise ModuleNotFoundError(f"{fullname} is not needed for a model run", name=fullname)
        return None


def preload_libraries() -> None:
    """Start importing torch and MONAI on a background thread, for a model run to come.

    The imports take about 3.5 s and hold the GIL only part of that time, while reading a CT
    spends most of its time decompressing in SimpleITK without it: a caller that reads its input
    meanwhile gets both done in about the time of the imports alone (1.2 s saved on a 512 x 512 x
    400 CT). Whoever imports these modules next simply waits for the thread; if the imports fail
    there, they fail again, with their message, where the model runs.

    MONAI's optional packages in :data:`UNUSED_BY_MODEL_RUNS` stay unimported, and MONAI treats
    them as not installed for the rest of the process: only for processes that run models and
    nothing else (``ctseg segment``), never for one that may train.
    """
    import contextlib
    import sys
    import threading

    def load() -> None:
        hook = _SkipImports(UNUSED_BY_MODEL_RUNS)
        sys.meta_path.insert(0, hook)
        # a failure here is reported by the engine's own import of the same modules
        try:
            with contextlib.suppress(Exception):
                import monai.bundle  # noqa: F401  (imports torch first)
        finally:
            sys.meta_path.remove(hook)

    # A daemon thread: an early exit (unreadable input) does not wait for the imports.
    threading.Thread(target=load, name="ctseg-preload", daemon=True).start()


def resolve_device(device: str = "auto"):
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device in ("auto", None, ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise BundleError("no CUDA GPU is available here (use --device cpu or auto)")
    return torch.device(device)


def _plan(ref: ModelRef):
    from ctseg_gui.inference.bundle import load_plan
    from ctseg_gui.inference.modelref import bundle_config_file

    config = bundle_config_file(ref.bundle)
    key = (ref, config.stat().st_mtime_ns)
    if key not in _PLANS:
        _PLANS.clear()  # one parsed bundle at a time is plenty; networks have their own cache
        _PLANS[key] = load_plan(ref)
    return _PLANS[key]


def clear_model_cache() -> None:
    """Drop cached configs and networks."""
    from ctseg_gui.inference.bundle import clear_network_cache

    _PLANS.clear()
    clear_network_cache()


def warm_model(ref: ModelRef, device: str = "auto") -> None:
    """Parse ``ref``'s bundle and build its network on ``device`` now, into the caches.

    The next :func:`segment_volume` with the same model and device then starts at once: what a
    long-lived worker (or a batch over many CTs) pays once. The built-in model has nothing to load.
    """
    if ref.builtin:
        return
    from ctseg_gui.inference.bundle import get_network

    get_network(ref, _plan(ref), resolve_device(device))


def label_table_for(ref: ModelRef, plan=None) -> LabelTable:
    """The model's label table: the catalog's when it has one, else the bundle metadata's."""
    if ref.model_id:
        from ctseg_gui.inference.catalog import load_catalog

        manifest = load_catalog().get(ref.model_id)
        if manifest is not None and manifest.labels:
            return manifest.label_table()
    labels = plan.labels if plan is not None else {}
    return LabelTable.from_names({v: n for v, n in labels.items() if v != 0})


def segment_volume(
    volume: Volume,
    model: ModelRef,
    *,
    device: str = "auto",
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    fast_path: bool = True,
    precision: str = "auto",
    backend: str = "torch",
) -> LabelMap:
    """Segment ``volume`` with ``model``; the labels lie exactly on the volume's grid.

    Parameters
    ----------
    volume
        The CT (callers check modality with ``require_ct`` first).
    model
        From :func:`~ctseg_gui.inference.resolve_model`.
    device
        ``auto`` (CUDA when present, with AMP when the bundle asks for it), ``cpu`` or ``cuda``.
    progress
        ``progress(stage, fraction)`` with stages ``loading``, ``preprocessing``, ``inference``,
        ``resampling``.
    cancelled
        Polled before every sliding-window batch; when it returns True, :class:`JobCancelled`
        is raised.
    fast_path
        False forces the bundle's own MONAI preprocessing chain (for comparisons).
    precision
        ``auto`` (as the bundle's own workflow: AMP on CUDA when it asks, float32 on the CPU),
        ``fp32`` or ``reduced`` (fast mode: bfloat16 on the CPU); see
        :mod:`ctseg_gui.inference.precision`.
    backend
        ``torch``, ``onnxruntime``, ``openvino``, ``tensorrt`` or ``auto`` (the fastest that
        passed its parity check here; see :mod:`ctseg_gui.inference.backends`). The result's
        ``run_info`` names the backend and precision that ran.

    Raises
    ------
    BundleError
        Bad config, missing / damaged / mismatched weights, transforms that fail.
    JobCancelled
        ``cancelled()`` returned True.
    """
    if isinstance(model, str):  # a catalog or built-in id, for convenience
        from ctseg_gui.inference.modelref import resolve_model

        model = resolve_model(model)
    if model.builtin:
        from ctseg_gui.inference.ct_tissues import segment_ct_tissues
        from ctseg_gui.inference.provenance import model_provenance

        labels = segment_ct_tissues(volume, progress=progress, cancelled=cancelled)
        labels.provenance = model_provenance(model, "cpu", "fp32", backend="numpy")
        return labels
    import torch

    target = resolve_device(device)
    try:
        try:
            return _segment_bundle(
                volume, model, target, progress, cancelled, fast_path, precision, backend
            )
        except torch.cuda.OutOfMemoryError:
            if target.type != "cuda":
                raise
            torch.cuda.empty_cache()
            warnings.warn(
                CtsegWarning(
                    f"{model.name}: the GPU ran out of memory; running on the CPU instead"
                ),
                stacklevel=2,
            )
            if progress:
                progress("GPU out of memory: retrying on CPU", 0.0)
            target = torch.device("cpu")
            return _segment_bundle(
                volume, model, target, progress, cancelled, fast_path, precision, backend
            )
    except RuntimeError as error:
        if "can't allocate memory" not in str(error) and "out of memory" not in str(error):
            raise
        raise BundleError(
            f"{model.name}: not enough memory on the {target.type.upper()} for this CT"
            + (" (try the lowres variant)" if model.variant == "highres" else ""),
            model.bundle,
        ) from error


def _segment_bundle(
    volume, ref, device, progress, cancelled, fast_path, precision, backend="torch"
) -> LabelMap:
    import time

    from ctseg_gui.inference.backends import make_predictor
    from ctseg_gui.inference.bundle import get_network
    from ctseg_gui.inference.preprocess import plan_steps, run_steps
    from ctseg_gui.inference.sliding import WindowSettings, plan_windows, sliding_window_labels

    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, float(fraction))

    def check() -> None:
        if cancelled is not None and cancelled():
            raise JobCancelled()

    report("loading", 0.0)
    plan = _plan(ref)
    network = get_network(ref, plan, device)
    report("loading", 1.0)
    check()
    report("preprocessing", 0.0)
    steps = plan_steps(plan.transforms, plan.image_key) if fast_path else None
    # Our arrays are [k, j, i]; MONAI's readers give (i, j, k) with the RAS affine.
    source = volume.array.transpose(2, 1, 0)
    if steps is not None:
        prepared = run_steps(source, volume.affine_ras, steps, device)
        image, meta_image = prepared.image, None
    else:
        prepared = None
        meta_image = _monai_preprocess(volume, plan)
        image = meta_image.as_tensor().to(device=device, dtype=torch_float32())
    report("preprocessing", 1.0)
    check()
    settings = WindowSettings.from_inferer(plan.inferer)
    out_channels = _guess_channels(plan)
    keep = keeps_probabilities(plan, image[0].numel())
    roi, _, _, window_slices = plan_windows(tuple(image.shape[1:]), settings)
    predictor = make_predictor(
        backend,
        network,
        device,
        precision,
        roi=roi,
        labels_only=not keep,
        bundle_amp=plan.amp,
        progress=report,
    )
    started = time.perf_counter()
    labels, probs = sliding_window_labels(
        image,
        predictor,
        settings,
        keep_probabilities=keep,
        activation=plan.activation,
        progress=lambda f: report("inference", f),
        cancelled=cancelled,
        out_channels=out_channels,
    )
    n_windows = len(window_slices)
    _SECONDS_PER_WINDOW[(str(ref.bundle), str(device), precision, backend)] = (
        time.perf_counter() - started
    ) / n_windows
    del image
    report("resampling", 0.0)
    if prepared is not None:
        result = _invert_fast(labels, probs, prepared, source.shape)
    else:
        result = _invert_monai(labels, probs, meta_image, plan)
    report("resampling", 1.0)
    array = np.ascontiguousarray(result.transpose(2, 1, 0))
    top = int(array.max()) if array.size else 0
    array = array.astype(smallest_label_dtype(max(top, 1)), copy=False)
    from ctseg_gui.inference.provenance import model_provenance

    result = LabelMap(array, volume, label_table_for(ref, plan))
    # what ran, for provenance records and reports
    result.run_info = {
        "backend": predictor.name,
        "precision": predictor.precision,
        "dtype": predictor.dtype,
        "device": str(device),
    }
    result.provenance = model_provenance(
        ref, device, precision, predictor.dtype, backend=predictor.name
    )
    return result


def keeps_probabilities(plan, voxels: int) -> bool:
    """Whether the sliding window keeps class probabilities (to invert them before the argmax)."""
    channels = _guess_channels(plan)
    if not plan.probabilities_first:
        return False
    return channels is None or channels * voxels * 4 <= PROBABILITY_BUDGET_BYTES


def torch_float32():
    import torch

    return torch.float32


def _blended_channels(plan, classes: int) -> int:
    """Channels the sliding window blends: a SegResNet's features when only labels are kept."""
    from ctseg_gui.inference.heads import blended_features

    if plan.probabilities_first:
        return classes
    try:
        network_def = plan.parser.get().get("network_def")
    except (AttributeError, TypeError):
        return classes
    return blended_features(network_def) or classes


def _guess_channels(plan) -> int | None:
    try:
        config = plan.parser.get()
        net = config.get("network_def") or {}
        return int(net["out_channels"]) if isinstance(net, dict) and "out_channels" in net else None
    except (TypeError, ValueError):
        return None


def _invert_fast(labels, probs, prepared, input_shape) -> np.ndarray:
    """Labels on the input grid (MONAI index order) from the network grid."""
    import torch

    from ctseg_gui.inference.resample import resample_reduce
    from ctseg_gui.inference.sliding import channel_argmax

    back = np.linalg.inv(prepared.to_input)  # input index -> (pre-crop) network-grid index
    # Written through an (i, j, k) view of a [k, j, i] array: each slab of k lands in one block
    # of memory, and the caller's transpose back to our [k, j, i] order costs nothing.
    out = torch.zeros(tuple(input_shape)[::-1], dtype=torch.int16).permute(2, 1, 0)
    if probs is not None and probs.shape[0] == 2:
        # Interpolation is linear, so class 1 wins where the interpolated p1 - p0 is positive:
        # one channel to resample instead of two.
        source = _uncrop(probs[1:2] - probs[0:1], prepared)
        resample_reduce(
            source, back, tuple(input_shape), "linear", lambda d: (d[0] > 0).to(torch.int16), out
        )
    elif probs is not None:
        source = _uncrop(probs, prepared)

        def reduce(p):
            return channel_argmax(p).to(torch.int16)

        resample_reduce(source, back, tuple(input_shape), "linear", reduce, out)
    else:
        source = _uncrop(labels[None], prepared)
        resample_reduce(source, back, tuple(input_shape), "nearest", lambda p: p[0], out)
    return out.numpy()


def _uncrop(array, prepared):
    """Put a cropped result back into the pre-crop grid (zeros outside, as MONAI's inverse)."""
    import torch

    if prepared.full_shape is None:
        return array
    full = torch.zeros((array.shape[0], *prepared.full_shape), dtype=array.dtype)
    start = np.asarray(prepared.crop_start)
    end = start + np.asarray(array.shape[1:])
    lo, hi = np.maximum(start, 0), np.minimum(end, prepared.full_shape)
    a, b = lo - start, hi - start
    full[:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = array[
        :, a[0] : b[0], a[1] : b[1], a[2] : b[2]
    ]
    return full


def _monai_preprocess(volume: Volume, plan):
    """The bundle's own preprocessing chain on a temporary NIfTI of ``volume``."""
    import tempfile

    from ctseg_gui.io.images import write_image

    with tempfile.TemporaryDirectory(prefix="ctseg-") as tmp:
        path = Path(tmp) / "input.nii.gz"
        write_image(volume, path)
        try:
            data = plan.preprocessing({plan.image_key: str(path)})
        except Exception as error:  # noqa: BLE001 - report the bundle's failing transform
            reason = (
                str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            )
            raise BundleError(
                f"the bundle's preprocessing failed: {reason}", plan.config_file
            ) from error
    image = data[plan.image_key] if isinstance(data, dict) else data
    if image.ndim != 4 or image.shape[0] != 1:
        raise BundleError(
            f"preprocessing gave shape {tuple(image.shape)}, not 1 x X x Y x Z: the network "
            "takes several input channels (a click-guided model such as DeepEdit, or a "
            "multi-image bundle); `ctseg segment` feeds it one CT",
            plan.config_file,
        )
    return image


def _invert_monai(labels, probs, meta_image, plan) -> np.ndarray:
    """Undo the bundle's own transforms with MONAI's Invertd (fallback path)."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Invertd

    pred = probs if probs is not None else labels[None].to(torch.float32)
    pred = MetaTensor(pred, affine=meta_image.affine, meta=dict(meta_image.meta))
    pred.applied_operations = list(meta_image.applied_operations)
    inverter = Invertd(
        keys="pred",
        transform=plan.preprocessing,
        orig_keys=plan.image_key,
        nearest_interp=probs is None,
        to_tensor=True,
    )
    out = inverter({plan.image_key: meta_image, "pred": pred})["pred"]
    out = out.argmax(0) if probs is not None else out[0]
    return np.rint(np.asarray(out.detach().cpu())).astype(np.int16)


def estimate_resources(
    volume: Volume,
    model: ModelRef,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "torch",
) -> dict:
    """Predicted peak memory and time of ``segment_volume`` for this CT, before running it.

    Returns a dict with ``device``, ``network_shape`` (grid the network runs on), ``windows``,
    ``classes``, ``peak_bytes`` (host RAM on CPU, GPU memory on CUDA), ``seconds`` (None until
    this model ran once in this process on this device at this ``precision`` and ``backend``),
    ``available_bytes`` and ``fits``.
    """
    if model.builtin:
        return {
            "device": "cpu",
            "peak_bytes": volume.array.size * 16,
            "seconds": None,
            "fits": True,
        }
    from ctseg_gui.inference.preprocess import orientation_affine, plan_steps, spacing_affine
    from ctseg_gui.inference.sliding import CPU_WINDOWS_PER_PASS, WindowSettings, plan_windows

    target = resolve_device(device)
    plan = _plan(model)
    shape, affine = tuple(volume.size), volume.affine_ras
    for step in plan_steps(plan.transforms, plan.image_key) or []:
        if step.kind == "orient":
            affine, shape = orientation_affine(affine, shape, step.params["axcodes"])
        elif step.kind == "spacing":
            affine, shape = spacing_affine(affine, shape, step.params["pixdim"])
    settings = WindowSettings.from_inferer(plan.inferer)
    roi, padded, _, slices = plan_windows(shape, settings)
    classes = _guess_channels(plan) or max(len(plan.labels), 2)
    blended = _blended_channels(plan, classes)
    voxels = int(np.prod(padded))
    slab = voxels // max(padded) * max(roi) if voxels else 0
    roi_voxels = int(np.prod(roi))
    params = _parameter_bytes(plan)
    per_pass = settings.sw_batch_size
    if target.type == "cpu":
        per_pass = min(per_pass, CPU_WINDOWS_PER_PASS)
    activations = per_pass * roi_voxels * 4 * 48  # ~48 feature maps alive at once
    # first resampling pass: two float64 buffers of the input shrunk along one axis
    shrink = min(1.0, min(n / max(m, 1) for n, m in zip(shape, volume.size, strict=True)))
    runtime = 700 * 2**20 if target.type == "cpu" else 0  # torch + MONAI in the process
    peak = (
        runtime
        + volume.array.size * 6  # input as read, and the reader's copy
        + int(volume.array.size * shrink * 8 * 2)
        + voxels * 4 * 2  # network-grid image and one resampling intermediate
        + blended * slab * 4  # the row buffer of blended scores (or features)
        # the network output, and as much again of freed activations the CPU heap keeps
        + blended * roi_voxels * 4 * per_pass * 2
        + voxels * 2  # labels
        + params * 2
        + activations
    )
    if plan.probabilities_first and classes * voxels * 4 <= PROBABILITY_BUDGET_BYTES:
        peak += classes * voxels * 4
    available = _available_bytes(target)
    per_window = _SECONDS_PER_WINDOW.get((str(model.bundle), str(target), precision, backend))
    fits = available is None or peak < available
    advice = ""
    if not fits:
        advice = f"needs about {peak / 2**30:.1f} GiB, {available / 2**30:.1f} GiB free on {target}"
        if model.variant == "highres":
            advice += "; the lowres variant needs roughly 8x less"
        if target.type == "cuda":
            advice += "; the CPU may have more memory"
    return {
        "advice": advice,
        "device": str(target),
        "network_shape": tuple(int(s) for s in shape),
        "windows": len(slices),
        "classes": classes,
        "peak_bytes": int(peak),
        "seconds": None if per_window is None else per_window * len(slices),
        "available_bytes": available,
        "fits": fits,
    }


def _parameter_bytes(plan) -> int:
    weights = plan.weights
    return weights.stat().st_size if weights.is_file() else 0


def _available_bytes(device) -> int | None:
    import os

    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
