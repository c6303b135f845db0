"""ONNX Runtime: the exported window network on its CPU, CUDA or TensorRT execution provider.

Measured on this 2-core Zen 4 CPU, ORT's CPU provider runs a whole-body SegResNet window slower
than torch in float32 (3.6 s against 2.2 s), so ``auto`` picks it only where a parity check found
it faster (a GPU, or another CPU). The TensorRT provider builds its engine on the first run and
keeps it in the cache folder (float16 for the ``reduced`` precision).
"""

from __future__ import annotations

from ctseg_gui.inference.backends.base import window_module
from ctseg_gui.inference.backends.cache import artefact_path, exported_onnx
from ctseg_gui.inference.errors import BundleError


def providers(device, precision: str, tensorrt: bool, cache_key: dict) -> list:
    """ORT execution providers (with options) for ``device``; CPU last as the fallback."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    chosen: list = []
    if tensorrt:
        if "TensorrtExecutionProvider" not in have:
            raise BundleError(
                "onnxruntime here has no TensorRT execution provider (install onnxruntime-gpu "
                "and TensorRT, with a CUDA GPU)"
            )
        engines = artefact_path("ort-trt", cache_key, "")
        engines.mkdir(parents=True, exist_ok=True)
        chosen.append(
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": device.index or 0,
                    "trt_fp16_enable": precision == "reduced",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(engines),
                },
            )
        )
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in have:
            raise BundleError("onnxruntime here has no CUDA execution provider (onnxruntime-gpu)")
        chosen.append(("CUDAExecutionProvider", {"device_id": device.index or 0}))
    chosen.append("CPUExecutionProvider")
    return chosen


class OrtPredictor:
    """An ONNX Runtime session on the exported window network (see :mod:`.cache`)."""

    name = "onnxruntime"

    def __init__(
        self,
        network,
        device,
        roi,
        precision: str = "auto",
        labels_only: bool = True,
        tensorrt: bool = False,
        progress=None,
        in_channels: int = 1,
    ) -> None:
        import onnxruntime as ort
        import torch

        if precision == "reduced" and not tensorrt:
            raise BundleError(
                "onnxruntime runs this model in float32 only; for the fast mode use "
                "--backend openvino (CPU) or tensorrt (GPU)"
            )
        self.device = torch.device(device)
        self.name = "tensorrt" if tensorrt else "onnxruntime"
        self.dtype = "float16" if tensorrt and precision == "reduced" else "float32"
        module, self.head = window_module(network, labels_only)
        path = exported_onnx(network, module, roi, labels_only, self.device, progress, in_channels)
        key = {"onnx": path.name, "ort": ort.__version__, "device": str(self.device)}
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(path),
                options,
                providers=providers(self.device, precision, tensorrt, {**key, "p": precision}),
            )
        except BundleError:
            raise
        except Exception as error:  # noqa: BLE001 - ORT raises its own exception types
            raise BundleError(
                f"onnxruntime could not load the exported network: {error}"
            ) from error
        self.input = self.session.get_inputs()[0].name

    def __call__(self, windows):
        import torch

        # numpy in and out: ORT's IO binding would keep CUDA tensors on the GPU, but the CPU
        # is this path's main use and a copy there is ~1% of a window
        scores = self.session.run(None, {self.input: windows.detach().float().cpu().numpy()})[0]
        out = torch.from_numpy(scores).to(self.device)
        if out.ndim != 5:
            return out
        # channel-fastest, as the torch path's output: the stitcher's blend streams it in order
        return out.contiguous(memory_format=torch.channels_last_3d)
