"""Enhanced (and legacy-converted enhanced) multi-frame CT: one file, many frames.

Geometry comes from the functional groups: plane positions per frame, orientation and pixel
measures shared or per frame, rescale from the Pixel Value Transformation group (or the top
level). Frames are sorted along the slice normal and pass the same slice checks as classic
series (:func:`ctseg_gui.io.dicom._check_slice_steps`). Pixels are decoded by pydicom.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import ImageReadError
from ctseg_gui.core.volume import Volume


def load_multiframe(entry) -> Volume:
    """Read a series made of one multi-frame file into a :class:`Volume` (LPS, HU)."""
    import pydicom

    from ctseg_gui.io.dicom import _check_slice_steps

    if len(entry.slices) != 1:
        raise ImageReadError(
            f"series {entry.uid} spreads {len(entry.slices)} multi-frame files (a concatenation);"
            " only one multi-frame file per series is read",
            entry.folder,
        )
    path = entry.slices[0].path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path)
    except Exception as error:  # noqa: BLE001 - any parse failure
        raise ImageReadError(f"damaged DICOM file ({error})", path) from error
    frames = int(dataset.get("NumberOfFrames", 1))
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence", []))
    shared = dataset.get("SharedFunctionalGroupsSequence", [None])[0]
    if len(per_frame) != frames:
        raise ImageReadError(
            f"multi-frame file with {frames} frames but {len(per_frame)} per-frame functional "
            "group items: frame positions unknown (not an enhanced image)",
            path,
        )
    positions = np.array(
        [
            _group(item, shared, "PlanePositionSequence", path).ImagePositionPatient
            for item in per_frame
        ],
        dtype=float,
    )
    orientations = np.array(
        [
            _group(item, shared, "PlaneOrientationSequence", path).ImageOrientationPatient
            for item in per_frame
        ],
        dtype=float,
    )
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise ImageReadError("frames of several orientations in one file", path)
    spacings = {
        tuple(float(v) for v in _group(item, shared, "PixelMeasuresSequence", path).PixelSpacing)
        for item in per_frame
    }
    if len(spacings) > 1:
        raise ImageReadError("frames of several pixel spacings in one file", path)
    row, column = orientations[0][:3], orientations[0][3:]
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    normal = np.cross(row, column)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    step = _check_slice_steps(entry, positions[order], along[order], normal)
    pixels = _decode(dataset, path)
    rescale = np.array([_rescale(item, shared, dataset) for item in per_frame])
    slopes, intercepts = rescale[:, 0], rescale[:, 1]
    array = pixels.astype(np.float32 if _fractional(slopes, intercepts) else np.int32)
    array *= np.asarray(slopes, dtype=array.dtype)[:, None, None]
    array += np.asarray(intercepts, dtype=array.dtype)[:, None, None]
    array = array[order]
    if array.dtype == np.int32 and array.min() >= -32768 and array.max() <= 32767:
        array = array.astype(np.int16)
    pixel_spacing = next(iter(spacings))
    volume = Volume(
        np.ascontiguousarray(array),
        (pixel_spacing[1], pixel_spacing[0], step),
        tuple(positions[order][0]),
        np.column_stack([row, column, normal]),
    )
    volume.metadata = {
        **entry.describe(),
        "source": str(path),
        "format": "DICOM (enhanced multi-frame)",
        "files": [str(path)],
    }
    return volume


def _group(item, shared, name: str, path: Path):
    """A functional group macro of one frame: its own, else the shared one."""
    for holder in (item, shared):
        if holder is not None and name in holder and len(holder[name].value):
            return holder[name].value[0]
    raise ImageReadError(f"multi-frame file lacks {name} for its frames", path)


def _rescale(item, shared, dataset) -> tuple[float, float]:
    for holder in (item, shared):
        if holder is not None and "PixelValueTransformationSequence" in holder:
            group = holder.PixelValueTransformationSequence[0]
            return float(group.get("RescaleSlope", 1)), float(group.get("RescaleIntercept", 0))
    return float(dataset.get("RescaleSlope", 1)), float(dataset.get("RescaleIntercept", 0))


def _fractional(slopes, intercepts) -> bool:
    return any(not float(v).is_integer() for v in (*slopes, *intercepts))


def _decode(dataset, path: Path) -> np.ndarray:
    if dataset.get("SamplesPerPixel", 1) != 1:
        raise ImageReadError("colour (RGB) frames: a greyscale CT is needed", path)
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # noqa: BLE001 - decoders raise many types
        raise ImageReadError(
            f"cannot decode the frames ({dataset.file_meta.TransferSyntaxUID.name}): {error}", path
        ) from error
    return pixels if pixels.ndim == 3 else pixels[None]
