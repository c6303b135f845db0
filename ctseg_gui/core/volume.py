"""The image volume: voxels plus the geometry that places them in the patient.

Conventions (kept everywhere in the package; readers and writers convert at the edges):

* ``array`` is indexed ``[k, j, i]`` (slice, row, column), C-contiguous, so the column index ``i``
  varies fastest in memory. This is SimpleITK's ``GetArrayFromImage`` order and VTK's memory
  layout, so both convert without copying.
* ``spacing``, ``origin`` and everything called an *index* are in ``(i, j, k)`` order.
* World coordinates are DICOM/ITK **LPS** millimetres (x to the patient's left, y to posterior,
  z to superior). NIfTI's RAS affine is ``diag(-1, -1, 1, 1) @ affine_lps``.
* ``direction`` is 3x3; column ``n`` is the LPS unit vector of index axis ``n``.
  ``world = origin + direction @ (spacing * index)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_LPS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of each LPS axis


@dataclass(eq=False)
class Volume:
    """A 3D scalar image with its patient geometry.

    Parameters
    ----------
    array
        Voxels indexed ``[k, j, i]``.
    spacing
        Voxel size in mm along ``(i, j, k)``.
    origin
        LPS position in mm of the centre of voxel ``(0, 0, 0)``.
    direction
        3x3 matrix whose columns are the LPS directions of the ``i``, ``j`` and ``k`` axes.
    metadata
        Free-form facts about the source (modality, patient, study, series description, path).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume needs a 3D array, got shape {self.array.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if any(s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive, got {self.spacing}")

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int, int]:
        """Number of voxels along ``(i, j, k)``."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def modality(self) -> str:
        """DICOM modality when known (``"CT"``, ``"MR"``...), ``""`` when the format does not say."""
        return str(self.metadata.get("modality", ""))

    # ---- geometry ----------------------------------------------------------------------------
    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous ``(i, j, k, 1)`` to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 matrix mapping ``(i, j, k, 1)`` to RAS mm (the NIfTI / nibabel convention)."""
        return LPS_TO_RAS @ self.affine_lps

    def index_to_world(self, ijk: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """LPS position of continuous index coordinates ``(i, j, k)`` (rows for many points)."""
        ijk = np.asarray(ijk, dtype=float)
        affine = self.affine_lps
        return ijk @ affine[:3, :3].T + affine[:3, 3]

    def world_to_index(self, xyz: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Continuous ``(i, j, k)`` of LPS points; round to get the voxel."""
        xyz = np.asarray(xyz, dtype=float)
        affine = self.affine_lps
        return (xyz - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T

    def contains_index(self, ijk: np.ndarray | tuple[int, int, int]) -> bool:
        """Whether the rounded index lies inside the volume."""
        idx = np.rint(np.asarray(ijk, dtype=float)).astype(int)
        return bool(np.all(idx >= 0) and np.all(idx < np.asarray(self.size)))

    @property
    def orientation_code(self) -> str:
        """Three letters naming where each index axis points, e.g. ``"LPS"`` or ``"RAS"``.

        Uses the dominant LPS component of each axis, the ITK / DICOM way of naming orientation.
        """
        letters = []
        for column in self.direction.T:
            axis = int(np.argmax(np.abs(column)))
            letters.append(_LPS_LETTERS[axis][1 if column[axis] > 0 else 0])
        return "".join(letters)

    @property
    def is_oblique(self) -> bool:
        """Whether any index axis is tilted away from the patient axes (by more than 0.01 degree)."""
        return bool(np.any(np.abs(self.direction).max(axis=0) < np.cos(np.radians(0.01))))

    def same_grid(self, other: Volume, tolerance: float = 1e-4) -> bool:
        """Whether ``other`` has the same size and geometry (see :func:`grid_differences`)."""
        return not grid_differences(self, other, tolerance)

    def with_array(self, array: np.ndarray, **metadata: Any) -> Volume:
        """A volume on this grid holding ``array`` (same shape), metadata updated by keywords."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match the grid {self.array.shape}")
        return Volume(
            array, self.spacing, self.origin, self.direction.copy(), {**self.metadata, **metadata}
        )

    def hu_range(self) -> tuple[float, float]:
        """Minimum and maximum voxel value."""
        return float(self.array.min()), float(self.array.max())


def grid_differences(a: Volume, b: Volume, tolerance: float = 1e-4) -> list[str]:
    """Human-readable reasons why ``b`` is not on the grid of ``a`` (empty when it is).

    ``tolerance`` is relative for spacing and absolute in mm for the origin (scaled by the voxel
    size) and for direction cosines.
    """
    problems = []
    if a.size != b.size:
        problems.append(f"size {_fmt(b.size, 'd')} differs from the image's {_fmt(a.size, 'd')}")
    if not np.allclose(a.spacing, b.spacing, rtol=tolerance, atol=0):
        problems.append(
            f"spacing {_fmt(b.spacing)} mm differs from the image's {_fmt(a.spacing)} mm"
        )
    if not np.allclose(a.origin, b.origin, atol=tolerance * max(1.0, max(a.spacing)) * 10):
        problems.append(f"origin {_fmt(b.origin)} mm differs from the image's {_fmt(a.origin)} mm")
    if not np.allclose(a.direction, b.direction, atol=tolerance):
        problems.append(
            f"orientation {b.orientation_code} (direction {_fmt(b.direction.ravel())}) differs "
            f"from the image's {a.orientation_code} (direction {_fmt(a.direction.ravel())})"
        )
    return problems


def _fmt(values, kind: str = "g") -> str:
    if kind == "d":
        return " x ".join(str(int(v)) for v in values)
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
