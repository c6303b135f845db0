"""Full-resolution boundary step of the geodesic click refiner, and its density helpers.

The geodesic competition runs on a coarse work grid (about 3 mm); on thin-slice CT that leaves a
blocky boundary that costs an enhanced vessel a tenth of its Dice. :func:`place_boundary` decides
the voxels near the coarse boundary one by one from the local intensities on either side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

if TYPE_CHECKING:
    from ctseg_gui.interactive.geodesic import GeodesicRefiner


def place_boundary(
    refiner: GeodesicRefiner,
    change: np.ndarray,
    full_img: np.ndarray,
    smooth: np.ndarray,
    work_mask: np.ndarray,
    positive: bool,
) -> np.ndarray:
    """The work-grid ``change`` at full resolution, its boundary placed voxel by voxel.

    Voxels within ``fine_band`` work voxels of the coarse boundary go to the side whose local
    mean intensity they are closer to: the change's core against what lies beyond the band
    (for a negative click: the removed core against the kept mask). The means are local, so
    the boundary of an enhanced vessel sits at its own contrast whether fat or bone lies
    beside it; where the two sides look alike (less than ``fine_contrast`` noise spreads
    apart) the coarse answer stands.
    """
    shape = full_img.shape
    if np.all(refiner.factors == 1) or not change.any():
        return refiner._upsample(change, shape)
    n = refiner.params.fine_band
    grown = ndi.binary_dilation(change, iterations=n)
    core = ndi.binary_erosion(change, iterations=n - 1) if n > 1 else change
    inner = ndi.binary_erosion(core)
    if not inner.any():
        inner = core if core.any() else change
    if positive:
        beyond = ndi.binary_dilation(grown, iterations=2) & ~grown & ~work_mask
        inner = inner | (ndi.binary_erosion(work_mask) & ~grown)
    else:
        beyond = work_mask & ~grown
    box_w = ndi.find_objects(ndi.binary_dilation(grown, iterations=2).astype(np.uint8))[0]
    box = tuple(
        slice(b.start * f, min(m, b.stop * f))
        for b, f, m in zip(box_w, refiner.factors, shape, strict=True)
    )
    sub = tuple(s.stop - s.start for s in box)

    def up(work: np.ndarray) -> np.ndarray:
        return refiner._upsample(work[box_w], sub)

    sigma = refiner.params.fine_mean_mm / refiner.work_spacing
    local = smooth[box_w]

    def local_mean(region: np.ndarray) -> np.ndarray:
        weight = ndi.gaussian_filter(region[box_w].astype(np.float32), sigma)
        total = ndi.gaussian_filter(np.where(region[box_w], local, 0.0), sigma)
        return np.where(weight > 1e-3, total / np.maximum(weight, 1e-6), np.nan)

    mean_in = refiner._upsample(local_mean(inner), sub)
    mean_out = refiner._upsample(local_mean(beyond), sub)
    spacing = np.asarray(refiner.image.spacing, dtype=float)[::-1]
    img = ndi.gaussian_filter(full_img[box], refiner.params.fine_smooth_mm / spacing)
    coarse, band = up(change), up(grown) & ~up(inner)
    # Noise of the structure at this resolution: what decides whether two sides differ.
    core_full = up(inner)
    residual = img[core_full] - mean_in[core_full]
    residual = residual[np.isfinite(residual)]
    noise = (
        1.4826 * float(np.median(np.abs(residual - np.median(residual))))
        if len(residual)
        else refiner.params.sigma_floor_hu
    )
    noise = max(noise, 5.0)
    values, m_in, m_out = img[band], mean_in[band], mean_out[band]
    decided = np.isfinite(m_in) & np.isfinite(m_out)
    decided &= np.abs(m_in - m_out) >= refiner.params.fine_contrast * noise
    closer = np.abs(values - m_in) < np.abs(values - m_out)
    result = coarse.copy()
    result[band] = np.where(decided, closer, coarse[band])
    result |= core_full
    # Only what stays connected to the coarse change counts (no specks beyond the band).
    labels, _ = ndi.label(result)
    keep = np.unique(labels[coarse & result])
    result = np.isin(labels, keep[keep > 0])
    out = np.zeros(shape, bool)
    out[box] = result
    return out


class Density:
    """Normalised kernel density (per HU) of weighted samples, on 2 HU bins spanning ``span``."""

    def __init__(
        self, samples: np.ndarray, weights: np.ndarray | None, bandwidth: float, span: np.ndarray
    ) -> None:
        step = 2.0
        self.lo = min(float(np.min(span)), float(samples.min())) - 1.0
        hi = max(float(np.max(span)), float(samples.max())) + 1.0
        bins = np.arange(self.lo, hi + step, step)
        hist, _ = np.histogram(samples, bins=bins, weights=weights)
        density = ndi.gaussian_filter1d(hist.astype(float), bandwidth / step, mode="constant")
        self.density = density / max(float(density.sum()) * step, 1e-12)
        self.step = step

    def __call__(self, values: np.ndarray) -> np.ndarray:
        at = np.clip(((values - self.lo) / self.step).astype(int), 0, len(self.density) - 1)
        return self.density[at]


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` where each counts ``weights`` times."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(at, len(values) - 1)])
