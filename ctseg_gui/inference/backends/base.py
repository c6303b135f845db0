"""The predictor protocol and today's path, torch, as one of its implementations.

A predictor is what the sliding window calls on a batch of windows: ``predictor(windows)`` with
``windows`` a ``(N, 1, X, Y, Z)`` float32 tensor on ``predictor.device`` returns ``(N, C, X, Y,
Z)`` scores (any float dtype) on the same device. When ``predictor.head`` is a
:class:`~ctseg_gui.inference.heads.PointwiseHead`, the ``C`` channels are features that the
stitcher blends and then turns into labels with the head (see heads.py); the predictor decided
that, the stitcher only follows it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Predictor(Protocol):
    """A network on a device, at a precision, callable on a batch of windows."""

    #: ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``
    name: str
    #: the torch device windows are given and returned on
    device: Any
    #: arithmetic of the network pass: ``float32``, ``bfloat16``, ``float16``
    dtype: str
    #: the 1x1x1 output layer left to the stitcher, or None when the outputs are class scores
    head: Any

    def __call__(self, windows): ...


def window_module(network, labels_only: bool):
    """``(module, head)``: what to run on each window, and the head the stitcher applies.

    When only labels are wanted and the network is a SegResNet ending in a 1x1x1 convolution,
    the module is its trunk (see heads.py); otherwise the network itself and no head. Exported
    backends export this module, so they blend features as the torch path does.
    """
    import torch

    from ctseg_gui.inference.heads import split_pointwise_head

    split = split_pointwise_head(network) if labels_only else None
    if split is None:
        return network, None
    trunk, head = split

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network  # registered, so exports see its weights as parameters

        def forward(self, x):
            return trunk(x)

    return Trunk().eval(), head


def first_tensor(output):
    """The first tensor of a network's output (tensor, dict, list or tuple of them)."""
    import torch

    from ctseg_gui.inference.errors import BundleError

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return first_tensor(next(iter(output.values())))
    if isinstance(output, (list, tuple)):
        return first_tensor(output[0])
    raise BundleError(f"the network returned {type(output).__name__}, not a tensor")


class TorchPredictor:
    """The network run by torch: channels-last windows, autocast when ``autocast`` is a dtype.

    Parameters
    ----------
    network
        An eval-mode torch module on ``device``.
    device
        ``torch.device``.
    autocast
        ``torch.bfloat16`` / ``torch.float16`` to run under autocast, None for float32 (see
        :func:`~ctseg_gui.inference.precision.autocast_dtype`).
    labels_only
        Only labels are wanted: a SegResNet's pointwise head is left to the stitcher.
    """

    name = "torch"

    def __init__(self, network, device, autocast=None, labels_only: bool = True) -> None:
        import torch

        self.network = network
        self.device = torch.device(device)
        self.autocast = autocast
        self.dtype = "float32" if autocast is None else str(autocast).replace("torch.", "")
        self.module, self.head = window_module(network, labels_only)

    def __call__(self, windows):
        import torch

        from ctseg_gui.inference.precision import autocast_context

        if windows.ndim == 5:  # oneDNN's fast 3D convolutions are channels-last
            windows = windows.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), autocast_context(self.device, self.autocast):
            return first_tensor(self.module(windows))


def as_predictor(network_or_predictor, device=None, labels_only: bool = True):
    """A predictor as is; a torch module wrapped in a float32 :class:`TorchPredictor`."""
    if isinstance(network_or_predictor, Predictor) and not hasattr(
        network_or_predictor, "parameters"
    ):
        return network_or_predictor
    network = network_or_predictor
    if device is None:
        import torch

        param = next(iter(network.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    return TorchPredictor(network, device, None, labels_only)
