"""ONNX export of a window module, and the cache folder that keeps exports and engines.

Every artefact is keyed by what makes it valid: a digest of the network's weights, the window
shape, the exporting torch version, and (for compiled engines) the backend, its version, the
device and the precision. A changed bundle or an upgraded backend so gets a new file instead of
a stale one. Files are written to a temporary name and renamed, so a crash leaves no half file;
one that is damaged anyway (a truncated disk write) fails to load, is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Callable
from pathlib import Path

from ctseg_gui.core.settings import APP_NAME

_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cache_root() -> Path:
    """Folder for exported models, engines and parity records (``CTSEG_CACHE_DIR`` overrides)."""
    override = os.environ.get("CTSEG_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "backends"


def weights_digest(network) -> str:
    """A digest of ``network``'s parameters and buffers (names, shapes, dtypes and values).

    Computed from the loaded tensors, not a file, so bundles and click models are keyed alike;
    remembered per network object (the worker keeps networks warm).
    """
    import torch

    if network in _DIGESTS:
        return _DIGESTS[network]
    digest = hashlib.sha256(type(network).__name__.encode())
    for name, tensor in network.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    value = digest.hexdigest()[:20]
    _DIGESTS[network] = value
    return value


def artefact_path(kind: str, key: dict, suffix: str) -> Path:
    """``cache_root()/kind/<hash of key><suffix>``; ``key`` is any JSON-able description."""
    text = json.dumps(key, sort_keys=True, default=str)
    name = hashlib.sha256(text.encode()).hexdigest()[:24]
    return cache_root() / kind / f"{name}{suffix}"


def write_atomically(path: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` to write a temporary file, then move it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_or_rebuild(path: Path, build: Callable[[Path], None], load: Callable[[Path], object]):
    """``load(path)``, building the file first when absent, and rebuilding it once if it fails."""
    if not path.is_file():
        write_atomically(path, build)
    try:
        return load(path)
    except Exception:  # noqa: BLE001 - any failure to load a cached file means rebuild it
        path.unlink(missing_ok=True)
        write_atomically(path, build)
        return load(path)


def onnx_key(network, roi: tuple[int, ...], labels_only: bool, in_channels: int = 1) -> dict:
    import torch

    return {
        "weights": weights_digest(network),
        "network": type(network).__name__,
        "roi": list(roi),
        "in_channels": in_channels,
        "features": labels_only,
        "torch": torch.__version__,
        "format": 1,
    }


def export_onnx(module, path: Path, roi: tuple[int, ...], in_channels: int = 1) -> None:
    """Export ``module`` on ``(N, in_channels, *roi)`` windows, the batch size ``N`` dynamic.

    The TorchScript-based exporter: it takes MONAI's networks as they are in a few seconds,
    while the dynamo exporter traces them for minutes. Opset 17 is read by every backend here.
    """
    import warnings

    import torch

    sample = torch.zeros((1, in_channels, *roi), dtype=torch.float32)
    module = module.to("cpu").eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(
            module,
            (sample,),
            str(path),
            input_names=["windows"],
            output_names=["scores"],
            dynamic_axes={"windows": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def exported_onnx(
    network, module, roi, labels_only: bool, device, progress=None, in_channels: int = 1
) -> Path:
    """The cached ONNX file of ``module`` (exported now when absent or unreadable)."""
    import onnx

    path = artefact_path("onnx", onnx_key(network, roi, labels_only, in_channels), ".onnx")

    def build(tmp: Path) -> None:
        if progress is not None:
            progress("exporting to ONNX", 0.0)
        original = next(iter(module.parameters())).device
        try:
            export_onnx(module, tmp, tuple(roi), in_channels)
        finally:
            module.to(original)
        onnx.checker.check_model(str(tmp))
        if progress is not None:
            progress("exporting to ONNX", 1.0)

    def load(p: Path) -> Path:
        onnx.checker.check_model(str(p))  # a truncated file fails here, not in a backend
        return p

    return load_or_rebuild(path, build, load)
