"""TensorRT: an engine built from the exported ONNX, run on CUDA tensors.

Needs the ``tensorrt`` package and a CUDA GPU. The engine is built for the window shape and
batch sizes 1 to ``max_batch`` (float16 for the ``reduced`` precision) and serialised to the
cache folder, keyed by the ONNX export, the TensorRT version, the GPU and the precision; one that
fails to deserialise (damaged, or from another GPU) is rebuilt. Where the ``tensorrt`` package is
absent but onnxruntime has its TensorRT execution provider, that is used instead (see ort.py).
"""

from __future__ import annotations

from ctseg_gui.inference.backends.base import window_module
from ctseg_gui.inference.backends.cache import artefact_path, exported_onnx, load_or_rebuild
from ctseg_gui.inference.errors import BundleError


def _build_engine(onnx_path, out_path, roi, max_batch: int, fp16: bool, channels: int) -> None:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT could not parse the exported network: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shape = tuple(roi)
    name = network.get_input(0).name
    lowest, highest = (1, channels, *shape), (max_batch, channels, *shape)
    profile.set_shape(name, lowest, highest, highest)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise BundleError("TensorRT could not build an engine for this network")
    with open(out_path, "wb") as stream:
        stream.write(engine)


class TensorRtPredictor:
    """A TensorRT engine of the exported window network on one CUDA device."""

    name = "tensorrt"

    def __init__(
        self,
        network,
        device,
        roi,
        precision: str = "auto",
        labels_only: bool = True,
        max_batch: int = 4,
        progress=None,
        in_channels: int = 1,
    ) -> None:
        import tensorrt as trt
        import torch

        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise BundleError("the tensorrt backend needs a CUDA GPU")
        fp16 = precision in ("reduced", "auto")  # auto on CUDA: AMP, as the bundles' workflow
        self.dtype = "float16" if fp16 else "float32"
        self.max_batch = max_batch
        module, self.head = window_module(network, labels_only)
        onnx_path = exported_onnx(
            network, module, roi, labels_only, self.device, progress, in_channels
        )
        key = {
            "onnx": onnx_path.name,
            "trt": trt.__version__,
            "gpu": torch.cuda.get_device_name(self.device),
            "fp16": fp16,
            "max_batch": max_batch,
            "channels": in_channels,
        }
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))

        def build(tmp):
            if progress is not None:
                progress("building the TensorRT engine", 0.0)
            _build_engine(onnx_path, tmp, roi, max_batch, fp16, in_channels)

        def load(path):
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise RuntimeError(f"{path}: not a TensorRT engine for this GPU and version")
            return engine

        self.engine = load_or_rebuild(artefact_path("tensorrt", key, ".engine"), build, load)
        self.context = self.engine.create_execution_context()
        self.input = self.engine.get_tensor_name(0)
        self.output = self.engine.get_tensor_name(1)

    def __call__(self, windows):
        import torch

        outputs = []
        stream = torch.cuda.current_stream(self.device)
        for part in windows.split(self.max_batch):
            x = part.to(self.device, torch.float32).contiguous()
            self.context.set_input_shape(self.input, tuple(x.shape))
            shape = tuple(self.context.get_tensor_shape(self.output))
            y = torch.empty(shape, dtype=torch.float32, device=self.device)
            self.context.set_tensor_address(self.input, x.data_ptr())
            self.context.set_tensor_address(self.output, y.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise BundleError("TensorRT failed to run the engine")
            outputs.append(y)
        out = torch.cat(outputs)
        return out.contiguous(memory_format=torch.channels_last_3d) if out.ndim == 5 else out
