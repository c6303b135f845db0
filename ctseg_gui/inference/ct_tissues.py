"""``ct-tissues``: the built-in, weight-free model.

Labels body, air/lung, fat, soft tissue and bone of a CT from Hounsfield-unit ranges plus
morphology, so the main job works on a fresh offline install with no model downloaded.

Labels (values of the returned :class:`~ctseg_gui.core.labels.LabelMap`):

====  ============  ==========================================================================
1     body          inside the body but in none of the ranges below (partial-volume voxels,
                    contrast-filled vessels above 150 HU)
2     air / lung    below -400 HU inside the body: lungs, airway, bowel gas
3     fat           -190 .. -30 HU
4     soft tissue   -30 .. 150 HU: muscle, organs, vessels, fluid
5     bone          seeds at >= 250 HU grown through connected voxels >= 100 HU, islands
                    under 0.2 ml (calcifications, noise) dropped, then marrow: voxels >= 40 HU
                    enclosed by bone within an axial slice
====  ============  ==========================================================================

The body is the set of large 3D components above -500 HU after an in-plane opening (which cuts
the thin bridges to the table, cables and blankets): the trunk plus arms or legs lying apart from
it. Every hole is filled slice by slice (the lungs and bowel gas are holes in an axial slice).
Everything outside, the table included, is 0.

Contrast: a contrast-filled aorta or heart (120..350 HU) touches the spine and would grow into
the bone; regions of that range thicker than 5 mm in-plane are therefore kept out of the bone
before it is grown. The price, on a non-contrast 3 mm CT, is part of the vertebral marrow that the
cortex does not enclose (bone Dice against TotalSegmentator's bones 0.80 instead of 0.84).

Each step is a whole-array numpy/scipy operation: a 512 x 512 x 400 CT takes a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ctseg_gui.core.labels import LabelEntry, LabelMap, LabelTable
from ctseg_gui.core.modality import require_ct
from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.errors import JobCancelled

BODY, AIR, FAT, SOFT, BONE = 1, 2, 3, 4, 5

MODEL_ID = "ct-tissues"
DISPLAY_NAME = "CT tissues (built-in, no weights)"

MIN_BONE_ML = 0.2
# The body is searched on a grid of about this spacing (mm): the 3D labelling and opening dominate
# the run time and a radiologist cannot see the difference at the skin after refinement at full
# resolution.
BODY_GRID_MM = 1.6
BODY_PART_FRACTION = 0.02

# Every voxel is first reduced to the index of its HU band (one pass over the volume); all later
# steps compare small integer codes. Bands: [-inf, -500) air outside, [-500, -400) air, [-400, -190)
# partial volume, [-190, -30) fat, [-30, 40) and [40, 100) soft tissue (the second also marrow),
# [100, 150) soft tissue or bone grown from a seed, [150, 250) bone grown from a seed, >= 250 seed.
_HU_EDGES = np.array([-500, -400, -190, -30, 40, 100, 120, 150, 250, 350], dtype=np.float64)
_CODE_TO_LABEL = np.array(
    [AIR, AIR, BODY, FAT, SOFT, SOFT, SOFT, SOFT, BODY, BODY, BODY], dtype=np.uint8
)
_CODE_MARROW = 5  # >= 40 HU
_CODE_GROW = 6  # >= 100 HU
_CODE_ENHANCED = (7, 9)  # 120 .. 350 HU: contrast-filled vessels, enhancing organs (and marrow)
_CODE_SEED = 9  # >= 250 HU
# In-plane radius (mm) of the opening that finds thick, homogeneous 120..350 HU regions: the lumen
# of a contrast-filled aorta or heart, an enhancing kidney. Bone is never that thick and that
# uniform except its marrow, which the cortex encloses and the marrow step restores.
ENHANCED_RADIUS_MM = 5.0

ProgressFn = Callable[[str, float], None]
CancelledFn = Callable[[], bool]


def label_table() -> LabelTable:
    """The label table of ``ct-tissues`` (colours chosen to read as the tissue they mark)."""
    rows = [
        (BODY, "body", (177, 122, 101)),
        (AIR, "air / lung", (92, 166, 230)),
        (FAT, "fat", (250, 214, 90)),
        (SOFT, "soft tissue", (214, 76, 76)),
        (BONE, "bone", (241, 236, 214)),
    ]
    return LabelTable({v: LabelEntry(v, name, colour) for v, name, colour in rows})


def segment_ct_tissues(
    volume: Volume,
    progress: ProgressFn | None = None,
    cancelled: CancelledFn | None = None,
) -> LabelMap:
    """Label body, air/lung, fat, soft tissue and bone of a CT in Hounsfield units.

    Parameters
    ----------
    volume
        A CT in HU (any orientation; the axial axis is found from the direction matrix).
    progress
        Called as ``progress(stage, fraction)`` with the overall fraction done in ``[0, 1]``.
    cancelled
        Polled between stages; when it returns true the job stops.

    Returns
    -------
    LabelMap
        uint8 labels on the grid of ``volume`` with :func:`label_table`.

    Raises
    ------
    ModalityError
        The image is not a CT in HU.
    JobCancelled
        ``cancelled()`` returned true.
    """
    from scipy import ndimage

    def step(stage: str, fraction: float) -> None:
        if cancelled is not None and cancelled():
            raise JobCancelled(f"{MODEL_ID} cancelled during '{stage}'")
        if progress is not None:
            progress(stage, fraction)

    step("checking the image", 0.0)
    require_ct(volume)
    axial = axial_array_axis(volume)
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    code = _hu_codes(volume.array)

    step("finding the body", 0.1)
    steps = tuple(max(1, round(BODY_GRID_MM / s)) for s in reversed(volume.spacing))
    body = _body_components(code >= 1, axial, steps, ndimage)
    labels = np.zeros(code.shape, dtype=np.uint8)
    box = _bounding_box(body)
    if box is None:
        step("done", 1.0)
        return LabelMap(labels, volume, label_table())
    # Everything after this happens inside the body's box: half the voxels of a typical field of
    # view, and nothing outside it can be body.
    body = np.ascontiguousarray(body[box])
    code = np.ascontiguousarray(code[box])
    step("filling the body", 0.4)
    _fill_holes_per_slice(body, axial, ndimage)

    step("air, fat and soft tissue", 0.55)
    inside = _CODE_TO_LABEL[code]
    inside *= body

    step("bone", 0.65)
    thick = _thick_enhanced(code, axial, steps, volume.spacing, ndimage)
    bone = _bone_mask(code, body & ~thick, max(1, round(MIN_BONE_ML / voxel_ml)), ndimage)
    del thick
    step("bone marrow", 0.85)
    bone_box = _bounding_box(bone)
    if bone_box is not None:
        enclosed = bone[bone_box].copy()
        _fill_holes_per_slice(enclosed, axial, ndimage)
        # Marrow inside the cortex is often below the bone range; the HU floor keeps the spinal
        # canal (CSF, cord), which the vertebral arch also encloses, out of the bone.
        bone[bone_box] |= enclosed & (code[bone_box] >= _CODE_MARROW)
    inside[bone] = BONE
    labels[box] = inside
    step("done", 1.0)
    return LabelMap(labels, volume, label_table())


def axial_array_axis(volume: Volume) -> int:
    """The array axis (0, 1 or 2 of ``[k, j, i]``) that runs head-foot.

    The index axis whose direction has the largest superior component; array axes are the index
    axes reversed.
    """
    index_axis = int(np.argmax(np.abs(volume.direction[2, :])))
    return 2 - index_axis


def _in_plane_structure(axial: int, connectivity: int = 1) -> np.ndarray:
    """A 3x3x3 structuring element with no reach along the axial axis (acts per slice)."""
    from scipy import ndimage

    plane = ndimage.generate_binary_structure(2, connectivity)
    structure = np.zeros((3, 3, 3), dtype=bool)
    index: list[slice | int] = [slice(None)] * 3
    index[axial] = 1
    structure[tuple(index)] = plane
    return structure


def _hu_codes(hu: np.ndarray) -> np.ndarray:
    """uint8 band index of every voxel (see ``_HU_EDGES``), by table lookup for integer CTs."""
    if np.issubdtype(hu.dtype, np.integer) and hu.size:
        low, high = int(hu.min()), int(hu.max())
        if low >= -32768 and high <= 32767:
            # A 65536-entry table indexed by the 16-bit pattern: one gather, no arithmetic.
            hu16 = hu.astype(np.int16, copy=False)
            values = np.arange(65536, dtype=np.uint16).view(np.int16)
            lut = np.searchsorted(_HU_EDGES, values, side="right").astype(np.uint8)
            return lut[hu16.view(np.uint16)]
    return np.searchsorted(_HU_EDGES, hu, side="right").astype(np.uint8)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The smallest box holding every true voxel, or None for an empty mask."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def _body_components(
    above: np.ndarray, axial: int, steps: tuple[int, int, int], ndimage
) -> np.ndarray:
    """The body: large 3D components of ``above`` (>= -500 HU) after an in-plane opening.

    Searched on a grid subsampled by ``steps`` (per array axis), then brought back to full
    resolution and intersected with ``above`` so the skin line keeps its full detail.
    """
    coarse = np.ascontiguousarray(above[:: steps[0], :: steps[1], :: steps[2]])
    cross = _in_plane_structure(axial)
    # Two in-plane erosions cut thin bridges (table pads, cables, blankets) but keep the body in
    # one piece; the chosen component is then grown back, never beyond the threshold mask.
    core = ndimage.binary_erosion(coarse, structure=cross, iterations=2)
    components, count = ndimage.label(core)
    if count == 0:
        # Nothing survives the erosion (a tiny crop): fall back to the raw threshold.
        components, count = ndimage.label(coarse)
        if count == 0:
            return np.zeros_like(above)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    # Arms (or legs) lying apart from the trunk are body too: keep every component of at least a
    # few percent of the largest; what the erosion leaves of a table is far smaller.
    keep = sizes >= max(1.0, BODY_PART_FRACTION * sizes.max())
    keep[0] = False
    largest = keep[components]
    del components
    grown = ndimage.binary_dilation(largest, structure=cross, iterations=3)
    if steps != (1, 1, 1):
        index = [np.arange(n) // step for n, step in zip(above.shape, steps, strict=True)]
        grown = grown[np.ix_(*index)]
    return grown & above


def _thick_enhanced(code, axial, steps, spacing, ndimage) -> np.ndarray:
    """Regions of 120..350 HU thicker than ``ENHANCED_RADIUS_MM`` in-plane (on the coarse grid)."""
    coarse = code[:: steps[0], :: steps[1], :: steps[2]]
    enhanced = (coarse >= _CODE_ENHANCED[0]) & (coarse <= _CODE_ENHANCED[1])
    in_plane = [s * step for s, step in zip(reversed(spacing), steps, strict=True)]
    in_plane.pop(axial)
    iterations = max(1, round(ENHANCED_RADIUS_MM / min(in_plane)))
    thick = ndimage.binary_opening(
        enhanced, structure=_in_plane_structure(axial), iterations=iterations
    )
    if steps != (1, 1, 1):
        index = [np.arange(n) // step for n, step in zip(code.shape, steps, strict=True)]
        thick = thick[np.ix_(*index)]
    return thick


def _fill_holes_per_slice(mask: np.ndarray, axial: int, ndimage) -> None:
    """Fill, in place, every hole of ``mask`` that is enclosed within its axial slice.

    One labelling of the complement with a per-slice structuring element replaces hundreds of 2D
    ``binary_fill_holes`` calls: components that touch a slice's border are outside the body.
    """
    outside, count = ndimage.label(~mask, structure=_in_plane_structure(axial))
    if count == 0:
        return
    touches_border = np.zeros(count + 1, dtype=bool)
    for axis in range(3):
        if axis == axial:
            continue
        for end in (0, -1):
            touches_border[np.take(outside, end, axis=axis).ravel()] = True
    touches_border[0] = True  # label 0 is the mask itself
    mask |= ~touches_border[outside]


def _bone_mask(code: np.ndarray, body: np.ndarray, min_voxels: int, ndimage) -> np.ndarray:
    """Hysteresis bone: components >= 100 HU holding a >= 250 HU seed, small islands dropped."""
    bone = np.zeros(code.shape, dtype=bool)
    candidate = code >= _CODE_GROW
    candidate &= body
    box = _bounding_box(candidate)
    if box is None:
        return bone
    candidate = candidate[box]
    components, count = ndimage.label(candidate)
    seeded = np.zeros(count + 1, dtype=bool)
    seeded[components[code[box] >= _CODE_SEED]] = True
    # Sizes from the candidate voxels only: a bincount over the whole box would first copy every
    # label to 64 bits.
    big = np.bincount(components[candidate], minlength=count + 1) >= min_voxels
    keep = seeded & big
    keep[0] = False
    bone[box] = keep[components]
    return bone
