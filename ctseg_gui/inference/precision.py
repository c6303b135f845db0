"""Arithmetic precision of the network pass: float32, or mixed precision where it is fast.

``auto`` does what the bundle's own workflow does: autocast to float16 on CUDA when the bundle's
evaluator asks for AMP (``evaluator#amp``, true in the model zoo's CT bundles), float32 on the
CPU, so the labels match MONAI's. ``reduced`` is the user's fast mode: autocast on any device,
bfloat16 on the CPU. oneDNN runs 3D convolutions about 2.7x faster in bfloat16 on CPUs with AMX
tiles (Intel Sapphire Rapids and later) and 2.1x on AVX-512 BF16 ones (a whole-body SegResNet
window on AMD Zen 4: 1.35 s against 2.9 s), but class scores move by ~1% of their range, so
voxels whose top two classes are that close may change label (measured in
benchmarks/bench_segment.py and bench_wholebody.py). ``fp32`` never autocasts. Everything around
the network (resampling, the weighted stitching sums, the argmax) stays float32.
"""

from __future__ import annotations

import contextlib

PRECISIONS = ("auto", "fp32", "reduced")


def autocast_dtype(device, precision: str = "auto", bundle_amp: bool = True):
    """The autocast dtype for the network pass on ``device``, or None for float32."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.float16 if precision == "reduced" or bundle_amp else None
    if device.type == "cpu" and precision == "reduced":
        return torch.bfloat16
    return None


def autocast_context(device, dtype):
    """A context that runs the network under autocast with ``dtype`` (no-op for None)."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
