"""Sliding-window inference stitched slab by slab, with the labels taken as each slab completes.

MONAI's ``sliding_window_inference`` keeps ``classes x voxels`` floats for the whole image (plus a
copy for the softmax); for the 105-class whole-body model at 1.5 mm that is many gigabytes. Here the
windows are the same (MONAI's own ``dense_patch_slices`` and importance map, so the blend is the
same), but they run in rows along one axis: once no later window can touch a slice, that slice is
divided by its weight, reduced to labels (argmax) and its floats are dropped. Peak memory is one
row of windows' worth of class scores, not the whole volume's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ctseg_gui.inference.errors import BundleError, JobCancelled
from ctseg_gui.inference.memory import reuse_freed_memory, zeroed_buffer


@dataclass
class WindowSettings:
    """The bundle inferer's settings (MONAI's SlidingWindowInferer defaults)."""

    roi_size: tuple[int, ...] = (96, 96, 96)
    sw_batch_size: int = 1
    overlap: float | tuple[float, ...] = 0.25
    mode: str = "constant"
    sigma_scale: float | tuple[float, ...] = 0.125
    padding_mode: str = "constant"
    cval: float = 0.0

    @classmethod
    def from_inferer(cls, inferer) -> WindowSettings:
        """Read a MONAI ``SlidingWindowInferer`` (or a ``SimpleInferer``: one whole-image window)."""
        if type(inferer).__name__ == "SimpleInferer":
            return cls(roi_size=(-1, -1, -1), sw_batch_size=1, overlap=0.0)
        return cls(
            roi_size=tuple(int(r) for r in np.atleast_1d(inferer.roi_size)),
            sw_batch_size=int(inferer.sw_batch_size),
            overlap=inferer.overlap,
            mode=str(getattr(inferer.mode, "value", inferer.mode)),
            sigma_scale=inferer.sigma_scale,
            padding_mode=str(getattr(inferer.padding_mode, "value", inferer.padding_mode)),
            cval=float(inferer.cval),
        )


def plan_windows(image_size, settings: WindowSettings):
    """(roi, padded size, pads, window slices) exactly as MONAI lays them out."""
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval
    from monai.utils import ensure_tuple_rep, fall_back_tuple

    roi = fall_back_tuple(
        settings.roi_size if len(settings.roi_size) == 3 else settings.roi_size * 3, image_size
    )
    padded = tuple(max(s, r) for s, r in zip(image_size, roi, strict=False))
    pads = [
        ((p - s) // 2, (p - s) - (p - s) // 2) for s, p in zip(image_size, padded, strict=False)
    ]
    overlap = ensure_tuple_rep(settings.overlap, 3)
    interval = _get_scan_interval(padded, roi, 3, overlap)
    slices = dense_patch_slices(padded, roi, interval)
    return tuple(roi), padded, pads, slices


# On the CPU, windows go through the network at most this many at a time, whatever the bundle's
# sw_batch_size: oneDNN is no faster with more, while the activations grow with each window
# (about 100 MB per 96^3 window for the spleen UNet in float32). Eval-mode networks treat windows
# independently, so the labels are the same.
CPU_WINDOWS_PER_PASS = 2


def _pad(image, pads, settings: WindowSettings):
    import torch.nn.functional as F

    if not any(a or b for a, b in pads):
        return image
    flat = [v for pair in reversed(pads) for v in pair]  # F.pad wants the last axis first
    mode = {
        "constant": "constant",
        "reflect": "reflect",
        "replicate": "replicate",
        "circular": "circular",
    }[settings.padding_mode]
    if mode == "constant":
        return F.pad(image, flat, mode=mode, value=settings.cval)
    return F.pad(image, flat, mode=mode)


def _shift(buffer, axis: int, shift: int) -> None:
    """Move ``buffer`` ``shift`` slices towards the start along ``axis`` in place; zero the tail.

    Every window of a row starts at the row's start, so a buffer one window deep always holds
    the row: reusing it (rather than slicing and concatenating) keeps one copy of the class
    scores alive instead of two.
    """
    dim = 1 + axis
    depth = buffer.shape[dim]
    if shift <= 0:
        return
    # destination slice t is below its source t + shift, so ascending order never reads a slice
    # that was already overwritten
    for t in range(max(depth - shift, 0)):
        buffer.select(dim, t).copy_(buffer.select(dim, t + shift))
    buffer.narrow(dim, max(depth - shift, 0), min(shift, depth)).zero_()


def channel_argmax(scores):
    """Index of the largest channel along dim 0 (the first one on ties, as ``argmax``).

    ``max(0).indices`` is the same reduction, but torch's CPU kernel for it is 3x (105 channels)
    to 30x (2 channels) faster than ``argmax(0)`` on our (C, X, Y, Z) slabs.
    """
    return scores.max(0).indices


def _row_buffers(padded, roi, axis: int, channels: int, device):
    """Zeroed ``(C, ...)`` blended sums and ``(1, ...)`` weight sums for one row of windows.

    The sums are class scores, or features where heads.py splits the network.
    Channel-fastest storage, as the channels-last network output: the weighted sum streams
    through both in memory order and the argmax reduces a contiguous run, instead of transposing
    C x 96^3 scores per window (4 s of a 105-class run). On the CPU the sums get a mapping of
    their own (see memory.py).
    """
    import torch

    span = list(padded)
    span[axis] = roi[axis]
    shape = (*span, channels)
    if device.type == "cpu":
        sums = zeroed_buffer(shape)
    else:
        sums = torch.zeros(shape, dtype=torch.float32, device=device)
    count = torch.zeros((1, *span), dtype=torch.float32, device=device)
    return sums.permute(3, 0, 1, 2), count


def _add_windows(acc, count, out, batch, weight, axis: int, lo: int) -> None:
    """Add each window's scores in ``out``, times ``weight``, to the row buffers at ``batch``."""
    for pred, w in zip(out, batch, strict=False):
        local = list(w)
        local[axis] = slice(w[axis].start - lo, w[axis].stop - lo)
        # In place: ``+= pred * weight`` made a C x 96^3 temporary and took a slow strided path
        # (0.66 s per 105-class window against 0.03 s). bfloat16 / float16 scores from autocast
        # are promoted to float32 here.
        acc[(slice(None), *local)].addcmul_(pred, weight)
        count[(slice(None), *local)] += weight


def sliding_window_labels(
    image,
    predictor,
    settings: WindowSettings,
    *,
    keep_probabilities: bool = False,
    activation: str | None = "softmax",
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    out_channels: int | None = None,
):
    """Run ``predictor`` over ``image`` (``(1, X, Y, Z)`` tensor on the compute device).

    ``predictor`` is a :class:`~ctseg_gui.inference.backends.base.Predictor` (any backend, any
    precision); a plain torch module is run as a float32 torch predictor. Returns ``(labels,
    probabilities)``: labels ``(X, Y, Z)`` int16 on the CPU; probabilities ``(C, X, Y, Z)``
    float32 after ``activation`` only when ``keep_probabilities`` (for bundles that resample
    probabilities before the argmax), else None. The stitching sums stay float32 whatever the
    predictor's precision. ``out_channels``, the network's output channels when the caller knows
    them, lets the row buffers be allocated before the first window runs (a wrong value costs an
    allocation, not a wrong result). When the predictor has a ``head``, its outputs are features
    that are blended and then turned into labels by the head (see heads.py).
    """
    import torch
    from monai.data.utils import compute_importance_map

    from ctseg_gui.inference.backends.base import as_predictor

    device = image.device
    size = tuple(image.shape[1:])
    roi, padded, pads, slices = plan_windows(size, settings)
    data = _pad(image[None], pads, settings)  # (1, 1, X, Y, Z)
    weight = compute_importance_map(
        roi,
        mode=settings.mode,
        sigma_scale=settings.sigma_scale,
        device=device,
        dtype=torch.float32,
    )
    starts = np.array([[s.start for s in window] for window in slices])
    axis = int(np.argmax([len(np.unique(starts[:, a])) + padded[a] * 1e-6 for a in range(3)]))
    rows = sorted(np.unique(starts[:, axis]))
    labels = torch.zeros(padded, dtype=torch.int16)
    probs = None
    acc = count = None
    lo = 0  # slab coordinate of acc[:, 0]
    done, total = 0, len(slices)
    predictor = as_predictor(predictor, device, labels_only=not keep_probabilities)
    head = predictor.head
    if keep_probabilities and head is not None:
        raise ValueError("probabilities need a predictor of class scores, not features (head)")
    if head is not None:
        out_channels = head.features
    if out_channels is not None:
        # Now rather than after the first window, while the memory preprocessing has just freed
        # is still backed: on this VM a 1.8 GB buffer (a high-res row of 105 class scores) took
        # 0.7-0.8 s to map here and 4.5-5.0 s after the first window, once the hypervisor had
        # taken those pages back.
        acc, count = _row_buffers(padded, roi, axis, out_channels, device)

    def take(sl, a, b):
        index = [slice(None)] * 3
        index[axis] = slice(a, b)
        return sl[(slice(None), *index)]

    def finalise(a: int, b: int) -> None:
        nonlocal probs
        if b <= a:
            return
        # Every class of a voxel shares its weight sum, a positive number, so the labels come
        # from the weighted sums directly; dividing first would cost a full copy of the slab's
        # class scores (0.9 s of a 105-class slab) and, being monotonic, cannot change a winner
        # (bar a rounding tie between two scores a few ulps apart).
        sums = take(acc, a - lo, b - lo)
        index = [slice(None)] * 3
        index[axis] = slice(a, b)
        if head is not None:
            labels[tuple(index)] = head.labels(sums, take(count, a - lo, b - lo)).cpu()
        elif sums.shape[0] == 1:
            labels[tuple(index)] = (sums[0] > 0).to(torch.int16).cpu()
        else:
            labels[tuple(index)] = channel_argmax(sums).to(torch.int16).cpu()
        if keep_probabilities:
            scores = sums / take(count, a - lo, b - lo)
            if probs is None:
                probs = zeroed_buffer((scores.shape[0], *padded))
            act = torch.softmax(scores, 0) if activation == "softmax" else scores
            act = torch.sigmoid(scores) if activation == "sigmoid" else act
            probs[(slice(None), *index)] = act.cpu()

    per_pass = settings.sw_batch_size
    if device.type == "cpu":
        per_pass = min(per_pass, CPU_WINDOWS_PER_PASS)
    # On the CPU, the activations each layer frees are kept for the next (see memory.py), and the
    # long-lived buffers get mappings of their own so as not to split that heap. The first window
    # then grows the heap once instead of faulting in fresh pages for every layer's output, and
    # later windows fault nothing: a whole-body highres run took 1.59M page faults, not 2.01M
    # (measured while the windows still blended all 105 class scores).
    with reuse_freed_memory(enabled=device.type == "cpu"):
        for row_start in rows:
            row = [w for w, s in zip(slices, starts, strict=False) if s[axis] == row_start]
            if row_start != rows[0]:
                finalise(lo, int(row_start))
                _shift(acc, axis, int(row_start) - lo)
                _shift(count, axis, int(row_start) - lo)
                lo = int(row_start)
            for b in range(0, len(row), per_pass):
                if cancelled is not None and cancelled():
                    raise JobCancelled()
                batch = row[b : b + per_pass]
                windows = torch.cat([data[(slice(None), slice(None), *w)] for w in batch])
                out = predictor(windows)
                if tuple(out.shape[2:]) != tuple(roi):
                    raise BundleError(
                        f"the network output {tuple(out.shape[2:])} differs from the window size {roi}"
                    )
                if acc is None or acc.shape[0] != out.shape[1]:
                    acc = count = None  # unknown or wrong channel count: (re)allocate
                    acc, count = _row_buffers(padded, roi, axis, out.shape[1], device)
                _add_windows(acc, count, out, batch, weight, axis, lo)
                del out  # before the next windows run: C x 96^3 floats each (371 MB at C=105)
                done += len(batch)
                if progress is not None:
                    progress(done / total)
        finalise(lo, lo + acc.shape[1 + axis])
    crop = tuple(slice(a, a + s) for (a, _), s in zip(pads, size, strict=False))
    labels = labels[crop].contiguous()
    if probs is not None:
        probs = probs[(slice(None), *crop)].contiguous()
    return labels, probs
