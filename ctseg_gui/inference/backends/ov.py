"""OpenVINO on the CPU: the exported window network in float32, or bfloat16 where the CPU has it.

OpenVINO's CPU plugin runs bfloat16 convolutions with AVX-512 BF16 or AMX. On this 2-core Zen 4
CPU (AVX-512 BF16, no AMX) a whole-body SegResNet window's trunk took 0.46 s in bfloat16 against
2.0 s in float32 and torch's 2.2 s float32 / 1.15 s bfloat16 autocast (measured in one process;
benchmarks/bench_backends.py has the end-to-end table). The plugin otherwise picks bfloat16 by
itself on AMX CPUs, so float32 is asked for explicitly. Compiled models are cached by OpenVINO
(``CACHE_DIR``) under a key folder of ours that names the OpenVINO version and precision.
"""

from __future__ import annotations

from ctseg_gui.inference.backends.base import window_module
from ctseg_gui.inference.backends.cache import artefact_path, exported_onnx
from ctseg_gui.inference.errors import BundleError


def reduced_precision() -> str | None:
    """OpenVINO's fast CPU precision here: ``bf16`` when the CPU has it, else None."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in capabilities else None


class OpenVinoPredictor:
    """An OpenVINO compiled model of the exported window network, on the CPU."""

    name = "openvino"

    def __init__(
        self,
        network,
        device,
        roi,
        precision: str = "auto",
        labels_only: bool = True,
        progress=None,
        in_channels: int = 1,
    ) -> None:
        import shutil

        import openvino as ov
        import torch

        self.device = torch.device(device)
        if self.device.type != "cpu":
            raise BundleError("the openvino backend runs on the CPU here (use --device cpu)")
        hint = "f32"
        if precision == "reduced":
            hint = reduced_precision()
            if hint is None:
                raise BundleError(
                    "this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX): openvino's fast "
                    "mode would be no faster; use --precision fp32"
                )
        self.dtype = {"f32": "float32", "bf16": "bfloat16"}[hint]
        module, self.head = window_module(network, labels_only)
        path = exported_onnx(network, module, roi, labels_only, self.device, progress, in_channels)
        blobs = artefact_path("openvino", {"onnx": path.name, "ov": ov.__version__, "p": hint}, "")
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "CACHE_DIR": str(blobs),
        }
        core = ov.Core()
        if progress is not None:
            progress("compiling for openvino", 0.0)
        try:
            self.compiled = core.compile_model(str(path), "CPU", config)
        except Exception:  # noqa: BLE001 - a damaged compiled-model cache: drop it, compile anew
            shutil.rmtree(blobs, ignore_errors=True)
            try:
                self.compiled = core.compile_model(str(path), "CPU", config)
            except Exception as error:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
                raise BundleError(f"openvino could not compile the network: {error}") from error
        if progress is not None:
            progress("compiling for openvino", 1.0)
        self.request = self.compiled.create_infer_request()

    def __call__(self, windows):
        import numpy as np
        import torch

        array = np.ascontiguousarray(windows.detach().float().cpu().numpy())
        scores = self.request.infer({0: array})[0]
        # a copy (the request reuses its output memory), channel-fastest as torch's output
        if scores.ndim != 5:
            return torch.from_numpy(scores).clone()
        return torch.from_numpy(scores).clone(memory_format=torch.channels_last_3d)
