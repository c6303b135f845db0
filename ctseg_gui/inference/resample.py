"""Separable resampling between grids whose axes are parallel (permuted / flipped / scaled).

Orientation (axis permutation and flips), MONAI's ``Spacing`` (new voxel size along the same axes)
and cropping never tilt the grid, so going from the input grid to the network grid and back is one
1D interpolation per axis. That is exactly trilinear interpolation (or nearest neighbour) with
MONAI's conventions (voxel centres, ``align_corners=False``, border padding), at a fraction of
``grid_sample``'s cost and memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class NotSeparable(ValueError):
    """The grids are tilted against each other (needs a general resampler)."""


def axis_map(transform: np.ndarray, tol: float = 1e-6) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Split a 4x4 target-index -> source-index matrix into per-axis ``src = scale * t + offset``.

    Returns ``(perm, scales, offsets)`` where target axis ``a`` reads source axis ``perm[a]``.
    """
    linear = np.asarray(transform, dtype=float)[:3, :3]
    perm = [int(np.argmax(np.abs(linear[:, a]))) for a in range(3)]
    if sorted(perm) != [0, 1, 2]:
        raise NotSeparable("axes do not map one to one")
    for a, p in enumerate(perm):
        rest = np.delete(linear[:, a], p)
        if np.any(np.abs(rest) > tol * max(1.0, abs(linear[p, a]))):
            raise NotSeparable("grids are rotated against each other")
    scales = np.array([linear[p, a] for a, p in enumerate(perm)])
    offsets = np.array([transform[p][3] for p in perm], dtype=float)
    return perm, scales, offsets


def resample(array, transform: np.ndarray, out_shape, mode: str = "linear", dtype=None):
    """Resample a channel-first torch tensor ``(C, X, Y, Z)`` onto ``out_shape``.

    ``transform`` maps target voxel indices to source voxel indices. ``mode`` is ``"linear"``
    (trilinear, border padding) or ``"nearest"`` (round half to even, as ``grid_sample``).
    ``dtype``: the floating type to interpolate in (default float32 for integer input); the
    input is converted slice by slice as the first pass selects it.
    """
    import torch

    if mode != "nearest" and dtype is None and not array.is_floating_point():
        dtype = torch.float32

    perm, scales, offsets = axis_map(transform)
    array = array.permute(0, *[1 + p for p in perm])
    ratios = [out_shape[a] / max(array.shape[1 + a], 1) for a in range(3)]
    for a in sorted(range(3), key=lambda k: ratios[k]):  # shrink first: smaller intermediates
        n = array.shape[1 + a]
        coords = scales[a] * np.arange(out_shape[a], dtype=np.float64) + offsets[a]
        coords = np.clip(coords, 0, n - 1)
        if mode == "nearest" or n == 1:
            index = torch.as_tensor(np.rint(coords).astype(np.int64), device=array.device)
            array = array.index_select(1 + a, index)
            if dtype is not None and mode != "nearest":
                array = array.to(dtype)
            continue
        low = np.minimum(np.floor(coords), n - 2).astype(np.int64)
        weight = coords - low
        if np.all(weight < 1e-9):
            array = array.index_select(1 + a, torch.as_tensor(low, device=array.device))
            array = array if dtype is None else array.to(dtype)
            continue
        work = dtype if dtype is not None else array.dtype
        shape = [1, 1, 1, 1]
        shape[1 + a] = -1
        w = torch.as_tensor(weight, dtype=work, device=array.device).view(shape)
        low_t = torch.as_tensor(low, device=array.device)
        first = array.index_select(1 + a, low_t).to(work)
        second = array.index_select(1 + a, low_t + 1).to(work)
        array = first.lerp_(second, w)  # in place: one slab-sized buffer fewer at the peak
        del second
    return array.contiguous()


def resample_reduce(
    array,
    transform: np.ndarray,
    out_shape,
    mode: str,
    reduce: Callable,
    out,
    chunk: int = 16,
) -> None:
    """Resample in slabs of ``chunk`` target slices along the last axis and reduce each slab.

    ``reduce(slab)`` turns a ``(C, X, Y, n)`` slab into what is written to ``out[..., z0:z1]``
    (e.g. an argmax). Only one slab of C channels exists at a time, so resampling 105 class
    probabilities back to a large grid stays within memory.
    """
    perm, scales, offsets = axis_map(transform)
    src_axis = perm[2]
    n_src = array.shape[1 + src_axis]
    for z0 in range(0, out_shape[2], chunk):
        z1 = min(z0 + chunk, out_shape[2])
        coords = np.clip(scales[2] * np.arange(z0, z1) + offsets[2], 0, n_src - 1)
        s0 = int(max(np.floor(coords.min()) - 1, 0))
        s1 = int(min(np.ceil(coords.max()) + 2, n_src))
        index = [slice(None)] * 4
        index[1 + src_axis] = slice(s0, s1)
        shifted = np.array(transform, dtype=float)
        shifted[:3, 3] = shifted[:3, 3] + shifted[:3, 2] * z0  # start the target at slice z0
        shifted[src_axis, 3] -= s0
        part = resample(array[tuple(index)], shifted, (*out_shape[:2], z1 - z0), mode)
        out[..., z0:z1] = reduce(part)
