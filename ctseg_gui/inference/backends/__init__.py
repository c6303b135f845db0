"""Inference backends behind one seam: torch, ONNX Runtime, OpenVINO and TensorRT.

:func:`make_predictor` turns a loaded torch network into a
:class:`~ctseg_gui.inference.backends.base.Predictor` for the chosen backend and precision; the
sliding window only calls predictors. Every backend but torch is optional: they are imported here
only when asked for, and one that is not installed is reported in one line, not a traceback.
``auto`` takes the fastest backend and precision that passed a parity check against torch
float32 for this network on this machine (see :mod:`.choice`), else torch.
"""

from __future__ import annotations

import importlib.util

from ctseg_gui.inference.errors import BundleError

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
#: the pip extra that installs each optional backend
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "tensorrt"}


def _present(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def is_installed(backend: str) -> bool:
    """Whether ``backend``'s packages are importable (TensorRT: the package or ORT's provider)."""
    if backend == "torch":
        return True
    if backend == "onnxruntime":
        return _present("onnxruntime", "onnx")
    if backend == "openvino":
        return _present("openvino", "onnx")
    if backend == "tensorrt":
        if _present("tensorrt", "onnx"):
            return True
        if not _present("onnxruntime", "onnx"):
            return False
        import onnxruntime

        return "TensorrtExecutionProvider" in onnxruntime.get_available_providers()
    return False


def installed_backends() -> list[str]:
    """The concrete backends usable here, torch first."""
    return [b for b in BACKENDS[1:] if is_installed(b)]


def backend_version(backend: str) -> str:
    """The installed version of ``backend``'s runtime package ("" when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    package = {
        "torch": "torch",
        "onnxruntime": "onnxruntime",
        "openvino": "openvino",
        "tensorrt": "tensorrt",
    }[backend]
    for name in (package, f"{package}-gpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return ""


def make_predictor(
    backend: str,
    network,
    device,
    precision: str = "auto",
    *,
    roi: tuple[int, ...],
    labels_only: bool = True,
    bundle_amp: bool = True,
    in_channels: int = 1,
    progress=None,
):
    """A predictor running ``network`` (eval mode, on ``device``) with ``backend``.

    Parameters
    ----------
    backend
        One of :data:`BACKENDS`; ``auto`` consults the parity record (see :mod:`.choice`).
    network
        The loaded torch network (exported backends export it, cached by its weights).
    device
        ``torch.device`` the windows live on.
    precision
        ``auto``, ``fp32`` or ``reduced`` (see :mod:`ctseg_gui.inference.precision`).
    roi
        The window shape (exports are made for it).
    labels_only
        Only labels are wanted, so a SegResNet's 1x1x1 head may be left to the stitcher.
    bundle_amp
        The bundle's own workflow uses AMP on CUDA.
    in_channels
        Input channels of the windows (click models take the image plus guidance channels).
    progress
        ``progress(stage, fraction)`` while exporting or compiling.

    Raises
    ------
    BundleError
        Unknown or not installed backend, a precision the backend does not run, a failed export.
    """
    import torch

    from ctseg_gui.inference.precision import PRECISIONS, autocast_dtype

    if backend not in BACKENDS:
        raise BundleError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    if precision not in PRECISIONS:
        raise BundleError(f"unknown precision {precision!r} (one of {', '.join(PRECISIONS)})")
    device = torch.device(device)
    if backend == "auto":
        from ctseg_gui.inference.backends.choice import choose

        backend, precision = choose(network, device, roi, labels_only, precision)
    if backend != "torch" and not is_installed(backend):
        raise BundleError(
            f"the {backend} backend is not installed here "
            f"(pip install 'ctseg-gui[{EXTRAS[backend]}]'; or use --backend torch)"
        )
    if backend == "torch":
        from ctseg_gui.inference.backends.base import TorchPredictor

        dtype = autocast_dtype(device, precision, bundle_amp)
        predictor = TorchPredictor(network, device, dtype, labels_only)
        predictor.precision = precision
        return predictor
    options = {"labels_only": labels_only, "progress": progress, "in_channels": in_channels}
    if backend == "onnxruntime":
        from ctseg_gui.inference.backends.ort import OrtPredictor

        predictor = OrtPredictor(network, device, roi, precision, **options)
    elif backend == "openvino":
        from ctseg_gui.inference.backends.ov import OpenVinoPredictor

        predictor = OpenVinoPredictor(network, device, roi, precision, **options)
    elif _present("tensorrt"):
        from ctseg_gui.inference.backends.trt import TensorRtPredictor

        predictor = TensorRtPredictor(network, device, roi, precision, **options)
    else:
        from ctseg_gui.inference.backends.ort import OrtPredictor

        predictor = OrtPredictor(network, device, roi, precision, tensorrt=True, **options)
    predictor.precision = precision
    return predictor
