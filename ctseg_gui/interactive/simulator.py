"""Click simulator: the evaluation protocol of the Deepgrow and nnInteractive papers.

Each next click goes to the interior point (maximum of the Euclidean distance transform, in mm) of
the largest connected error region; it is positive when that region is missed tissue (false
negative) and negative when it is a false positive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ctseg_gui.interactive.clicks import Click, Refiner


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / total


def next_click(
    prediction: np.ndarray, truth: np.ndarray, spacing_kji: tuple[float, ...] = (1.0, 1.0, 1.0)
) -> Click | None:
    """The click the protocol places next, ``None`` when the prediction is perfect.

    Parameters
    ----------
    prediction, truth
        Boolean masks ``[k, j, i]``.
    spacing_kji
        Voxel size along ``k, j, i`` so "interior" is measured in mm.
    """
    errors = prediction ^ truth
    if not errors.any():
        return None
    labels, count = ndi.label(errors)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    # Crop to the component so the distance transform stays cheap on big volumes; the pad makes
    # the image border count as outside the region.
    box = ndi.find_objects(largest.astype(np.uint8))[0]
    depth = ndi.distance_transform_edt(np.pad(largest[box], 1), sampling=spacing_kji)
    local = np.unravel_index(int(np.argmax(depth)), depth.shape)
    kji = tuple(int(p - 1 + s.start) for p, s in zip(local, box, strict=True))
    return Click((kji[2], kji[1], kji[0]), positive=bool(truth[kji]))


@dataclass
class ClickRun:
    """Result of :func:`simulate`: Dice and latency after each click, and the final mask."""

    dice: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    mask: np.ndarray | None = None


def simulate(
    refiner: Refiner,
    truth: np.ndarray,
    clicks: int,
    spacing_kji: tuple[float, ...] = (1.0, 1.0, 1.0),
    initial: np.ndarray | None = None,
) -> ClickRun:
    """Run ``clicks`` simulated clicks with ``refiner`` against the reference mask ``truth``.

    ``initial`` is a mask to refine (an automatic result); by default the run starts from nothing.
    Latency counts only the refiner's update, not the simulator's own error analysis. When the
    mask is already perfect the remaining entries repeat the last Dice with zero latency.
    """
    truth = truth.astype(bool)
    mask = np.zeros(truth.shape, bool) if initial is None else initial.astype(bool).copy()
    run = ClickRun()
    for _ in range(clicks):
        click = next_click(mask, truth, spacing_kji)
        if click is None:
            run.dice.append(1.0)
            run.latency_ms.append(0.0)
            continue
        run.clicks.append(click)
        start = time.perf_counter()
        region, values = refiner.refine(mask, list(run.clicks))
        mask[region] = values
        run.latency_ms.append((time.perf_counter() - start) * 1000.0)
        run.dice.append(dice(mask, truth))
    run.mask = mask
    return run
