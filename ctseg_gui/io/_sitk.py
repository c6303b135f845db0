"""SimpleITK at the edge: conversion to and from :class:`Volume`, with ITK's console noise off."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import ImageReadError
from ctseg_gui.core.volume import Volume

_quiet = False


def sitk():
    """SimpleITK with ITK's own warning printer silenced (it writes to stderr behind our back)."""
    global _quiet
    import SimpleITK

    if not _quiet:
        SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)
        _quiet = True
    return SimpleITK


def volume_from_sitk(
    image, metadata: dict | None = None, source: str | Path | None = None
) -> Volume:
    """Copy a 3D scalar SimpleITK image into a :class:`Volume` (``[k, j, i]`` order)."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"has {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector "
            "image); a scalar CT is needed",
            source,
        )
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim != 3:
        size = " x ".join(str(s) for s in image.GetSize())
        raise ImageReadError(f"is a {dim}D image ({size}); a 3D volume is needed", source)
    array = sitk().GetArrayFromImage(image)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return Volume(array, image.GetSpacing(), image.GetOrigin(), direction, dict(metadata or {}))


def volume_to_sitk(volume: Volume):
    """A SimpleITK image holding a copy of the volume's voxels and its geometry."""
    image = sitk().GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction.ravel()))
    return image


def itk_reason(error: Exception) -> str:
    """The meaningful line of an ITK exception (they span several lines of C++ context)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "description:" in line.lower():
            return line.split(":", 1)[1].strip()
    reason = lines[-1] if lines else "unknown error"
    # "ITK ERROR: GDCMImageIO(0x55..): Cannot read requested file" -> the last part
    return re.sub(r"^ITK ERROR:\s*\w+\(0x[0-9a-f]+\):\s*", "", reason)
