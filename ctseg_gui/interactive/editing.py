"""Manual editing: brush and eraser, hole filling, island clean-up, label management.

Every voxel change goes through :class:`~ctseg_gui.core.history.LabelEditor`, so each is one
undo step holding only its bounding box. Sizes are in millimetres so a brush feels the same on
0.7 mm and 5 mm images. Table-only changes (rename, recolour) are not voxel edits and are not in
the undo history.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ctseg_gui.core.history import LabelEditor, Region
from ctseg_gui.core.labels import LabelTable, default_colour


def brush_mask(
    center_ijk: tuple[float, float, float],
    radius_mm: float,
    spacing: tuple[float, float, float],
    shape_kji: tuple[int, int, int],
    plane_axis: int | None = 0,
) -> tuple[Region, np.ndarray]:
    """The voxels a brush covers: a disc in one slice plane, or a sphere.

    Parameters
    ----------
    center_ijk
        Brush centre, voxel index ``(i, j, k)`` (may be fractional).
    radius_mm
        Brush radius; at least the centre voxel is always covered.
    spacing
        Voxel size ``(i, j, k)`` in mm.
    shape_kji
        Array shape of the label map.
    plane_axis
        Array axis held fixed for a 2D disc (0 = axial ``k``, 1 = coronal ``j``, 2 = sagittal
        ``i``); ``None`` paints a 3D sphere.
    """
    centre = np.asarray(center_ijk, dtype=float)[::-1]
    step = np.asarray(spacing, dtype=float)[::-1]
    half = np.floor(radius_mm / step).astype(int)
    if plane_axis is not None:
        half[plane_axis] = 0
    voxel = np.rint(centre).astype(int)
    region = tuple(
        slice(max(0, c - h), min(n, c + h + 1))
        for c, h, n in zip(voxel, half, shape_kji, strict=True)
    )
    if any(s.start >= s.stop for s in region):
        return region, np.zeros([max(0, s.stop - s.start) for s in region], bool)
    grids = np.ogrid[tuple(region)]
    dist2 = sum(
        ((g - (voxel[a] if a == plane_axis else centre[a])) * step[a]) ** 2
        for a, g in enumerate(grids)
    )
    mask = dist2 <= radius_mm**2 + 1e-9
    inside = tuple(int(v - s.start) for v, s in zip(voxel, region, strict=True))
    if all(0 <= x < n for x, n in zip(inside, mask.shape, strict=True)):
        mask[inside] = True
    return region, np.asarray(mask)


def paint(
    editor: LabelEditor,
    value: int,
    center_ijk: tuple[float, float, float],
    radius_mm: float,
    plane_axis: int | None = 0,
    erase: bool = False,
    hu_range: tuple[float, float] | None = None,
    overwrite: bool = True,
) -> bool:
    """One brush (or eraser) dab of structure ``value``; returns whether voxels changed.

    ``hu_range`` limits the dab to image voxels within ``[low, high]`` HU; the eraser only clears
    ``value`` itself; ``overwrite=False`` paints background only, sparing other structures.
    """
    labels = editor.labels
    region, mask = brush_mask(
        center_ijk, radius_mm, labels.image.spacing, labels.array.shape, plane_axis
    )
    if not mask.any():
        return False
    if hu_range is not None:
        low, high = hu_range
        hu = labels.image.array[region]
        mask &= (hu >= low) & (hu <= high)
    if erase:
        return editor.paint(mask, 0, "erase", region=region, only_value=value)
    if not overwrite:
        mask &= labels.array[region] == 0
    return editor.paint(mask, value, "paint", region=region)


def _bbox(mask: np.ndarray, pad: int = 1) -> Region | None:
    boxes = ndi.find_objects(mask.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return None
    return tuple(
        slice(max(0, s.start - pad), min(n, s.stop + pad))
        for s, n in zip(boxes[0], mask.shape, strict=True)
    )  # type: ignore[return-value]


def fill_holes(editor: LabelEditor, value: int, plane_axis: int | None = None) -> bool:
    """Fill enclosed holes of structure ``value`` (in 3D, or slice by slice along an axis).

    Only background voxels are filled; a hole holding another structure stays.
    """
    array = editor.labels.array
    region = _bbox(array == value)
    if region is None:
        return False
    mask = array[region] == value
    if plane_axis is None:
        filled = ndi.binary_fill_holes(mask)
    else:
        filled = np.stack([ndi.binary_fill_holes(p) for p in np.moveaxis(mask, plane_axis, 0)])
        filled = np.moveaxis(filled, 0, plane_axis)
    new = filled & ~mask & (array[region] == 0)
    return editor.paint(new, value, "fill holes", region=region)


def keep_largest_island(editor: LabelEditor, value: int) -> bool:
    """Remove every connected part of ``value`` but the largest (26-connected)."""
    return _islands(
        editor, value, keep_largest=True, min_voxels=0, description="keep largest island"
    )


def remove_small_islands(editor: LabelEditor, value: int, min_ml: float) -> bool:
    """Remove connected parts of ``value`` smaller than ``min_ml`` millilitres."""
    voxel_ml = float(np.prod(editor.labels.image.spacing)) / 1000.0
    min_voxels = int(np.ceil(min_ml / voxel_ml))
    return _islands(editor, value, False, min_voxels, "remove small islands")


def _islands(editor, value, keep_largest, min_voxels, description) -> bool:
    array = editor.labels.array
    region = _bbox(array == value, pad=0)
    if region is None:
        return False
    mask = array[region] == value
    parts, count = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1 and keep_largest:
        return False
    sizes = np.bincount(parts.ravel())
    sizes[0] = 0
    keep = np.zeros(count + 1, bool)
    if keep_largest:
        keep[int(np.argmax(sizes))] = True
    else:
        keep = sizes >= min_voxels
        keep[0] = False
    drop = mask & ~keep[parts]
    return editor.paint(drop, 0, description, region=region, only_value=value)


# ---- label management -------------------------------------------------------------------------
def add_label(table: LabelTable, name: str, color: tuple[int, int, int] | None = None) -> int:
    """Add a structure with the smallest free value; returns the value."""
    value = table.next_free_value()
    table.ensure([value])
    table.update(value, name=name, color=tuple(color) if color else default_colour(value))
    return value


def rename_label(table: LabelTable, value: int, name: str) -> None:
    """Rename structure ``value``."""
    if not name.strip():
        raise ValueError("a structure needs a name")
    table.update(value, name=name.strip())


def recolour_label(table: LabelTable, value: int, color: tuple[int, int, int]) -> None:
    """Give structure ``value`` a new RGB colour (0-255 each)."""
    rgb = tuple(int(c) for c in color)
    if len(rgb) != 3 or any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour must be three values 0-255, got {color}")
    table.update(value, color=rgb)


def delete_label(editor: LabelEditor, value: int) -> bool:
    """Clear the voxels of ``value`` (one undo step) and drop it from the table."""
    array = editor.labels.array
    region = _bbox(array == value, pad=0)
    changed = False
    if region is not None:
        changed = editor.paint(array[region] == value, 0, "delete structure", region=region)
    editor.labels.table.entries.pop(value, None)
    return changed


def merge_labels(editor: LabelEditor, source: int, target: int) -> bool:
    """Relabel every voxel of ``source`` as ``target`` (one undo step) and drop ``source``."""
    if source == target:
        return False
    array = editor.labels.array
    region = _bbox(array == source, pad=0)
    changed = False
    if region is not None:
        changed = editor.paint(array[region] == source, target, "merge structures", region=region)
    editor.labels.table.entries.pop(source, None)
    return changed
