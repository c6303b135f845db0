"""Slice planes in world space: which voxels a slice view shows, and where they lie on screen.

Pure numpy (no VTK), so geometry is tested without a display. Each view has a fixed plane frame in
LPS: ``right`` and ``up`` are the world directions of screen right and screen up, ``normal`` is the
scroll direction. Radiological convention: patient's left (+x in LPS) is on screen right in the
axial and coronal views; anterior is on screen left in the sagittal view.

A slice is sampled on a 2D grid of *plane coordinates* ``(u, v)`` (mm along ``right`` and ``up``).
When the image axes are parallel to the plane frame (any LPS/RAS/permuted image) the grid is the
voxel grid itself, and a slice is a numpy view plus flips: no interpolation, exact voxels. Oblique
images are resampled in world space (trilinear for CT, nearest for labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctseg_gui.core.volume import Volume

#: Columns: LPS direction of screen right, screen up, and the scroll normal.
PLANE_FRAMES: dict[str, np.ndarray] = {
    "axial": np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).T,
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]).T,
    "sagittal": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T,
}

#: Letters at the (left, right, bottom, top) edges of each view.
EDGE_LETTERS: dict[str, tuple[str, str, str, str]] = {
    "axial": ("R", "L", "P", "A"),
    "coronal": ("R", "L", "I", "S"),
    "sagittal": ("A", "P", "I", "S"),
}

_ALIGNED = 1.0 - 1e-6


@dataclass
class SliceImage:
    """A 2D slice ready to draw: ``pixels[row, col]`` with row = +up, col = +right."""

    pixels: np.ndarray
    origin: tuple[float, float]  # plane coordinates (u, v) of pixel [0, 0]
    spacing: tuple[float, float]


class SliceGeometry:
    """Maps between world LPS, plane coordinates and the voxels of one view of one volume.

    Parameters
    ----------
    volume
        The image whose grid defines the slices.
    view
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    """

    def __init__(self, volume: Volume, view: str) -> None:
        self.view = view
        self.frame = PLANE_FRAMES[view]
        self.shape = volume.array.shape
        self._affine = volume.affine_lps
        self._inverse = np.linalg.inv(self._affine)
        # A[p, m]: component of index axis m (scaled by spacing) along plane axis p.
        linear = self.frame.T @ self._affine[:3, :3]
        self._offset = self.frame.T @ self._affine[:3, 3]
        unit = linear / np.linalg.norm(linear, axis=0, keepdims=True)
        self.aligned = bool(np.all(np.abs(unit).max(axis=1) >= _ALIGNED))
        size = np.asarray(volume.size, dtype=float)
        corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        plane = (corners * (size - 1)) @ linear.T + self._offset
        self._low, self._high = plane.min(axis=0), plane.max(axis=0)
        if self.aligned:
            self.axis_of = [int(np.argmax(np.abs(unit[p]))) for p in range(3)]  # index axis
            self.sign_of = [float(np.sign(linear[p, self.axis_of[p]])) for p in range(3)]
            self.step = [abs(float(linear[p, self.axis_of[p]])) for p in range(3)]
        else:
            # Sample the oblique image at its finest spacing along the plane axes.
            finest = float(min(volume.spacing))
            self.step = [finest, finest, finest]

    # ---- coordinates -------------------------------------------------------------------------
    def to_plane(self, xyz) -> np.ndarray:
        """``(u, v, w)`` plane coordinates of LPS point(s)."""
        return np.asarray(xyz, dtype=float) @ self.frame

    def to_world(self, uvw) -> np.ndarray:
        """LPS point(s) of plane coordinates ``(u, v, w)``."""
        return np.asarray(uvw, dtype=float) @ self.frame.T

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Low and high plane coordinates of the voxel centres (u, v, w)."""
        return self._low.copy(), self._high.copy()

    # ---- slice numbering ---------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of slices along the normal."""
        return int(round((self._high[2] - self._low[2]) / self.step[2])) + 1

    def slice_number(self, w: float) -> int:
        """0-based slice number of normal coordinate ``w`` (may fall outside ``0..count-1``)."""
        return int(np.floor((w - self._low[2]) / self.step[2] + 0.5))

    def slice_w(self, number: int) -> float:
        """Normal coordinate of slice ``number`` (clamped to the volume)."""
        number = min(max(int(number), 0), self.count - 1)
        return float(self._low[2] + number * self.step[2])

    # ---- sampling ----------------------------------------------------------------------------
    def extract(self, array: np.ndarray, w: float, nearest: bool = False, fill: float = 0):
        """The slice of ``array`` (on the volume's grid) at normal coordinate ``w``.

        Returns ``None`` when ``w`` lies outside the volume. The pixels are read-only in
        spirit: an aligned slice that needs no reordering is a view of ``array``, not a copy.
        """
        number = self.slice_number(w)
        if not 0 <= number < self.count:
            return None
        if self.aligned:
            return self._extract_aligned(array, number)
        return self._extract_oblique(array, self.slice_w(number), nearest, fill)

    def _extract_aligned(self, array: np.ndarray, number: int) -> SliceImage:
        mu, mv, mn = self.axis_of
        # Slice numbers run from low to high w; the index runs the other way when the sign is -1.
        index = number if self.sign_of[2] > 0 else self.shape[2 - mn] - 1 - number
        # A view: the one copy is the ascontiguousarray below, after transposes and flips.
        plane = array[(slice(None),) * (2 - mn) + (index,)]
        remaining = [a for a in (0, 1, 2) if a != 2 - mn]  # array axes left, in order
        if remaining.index(2 - mv) != 0:
            plane = plane.T
        if self.sign_of[0] < 0:
            plane = plane[:, ::-1]
        if self.sign_of[1] < 0:
            plane = plane[::-1, :]
        origin = (float(self._low[0]), float(self._low[1]))
        return SliceImage(np.ascontiguousarray(plane), origin, (self.step[0], self.step[1]))

    def _extract_oblique(self, array, w: float, nearest: bool, fill: float) -> SliceImage:
        from scipy.ndimage import map_coordinates

        du, dv = self.step[0], self.step[1]
        nu = int(round((self._high[0] - self._low[0]) / du)) + 1
        nv = int(round((self._high[1] - self._low[1]) / dv)) + 1
        u = self._low[0] + du * np.arange(nu)
        v = self._low[1] + dv * np.arange(nv)
        uu, vv = np.meshgrid(u, v)
        points = np.stack([uu, vv, np.full_like(uu, w)], axis=-1) @ self.frame.T
        ijk = points @ self._inverse[:3, :3].T + self._inverse[:3, 3]
        coords = np.stack([ijk[..., 2], ijk[..., 1], ijk[..., 0]])
        order = 0 if nearest else 1
        pixels = map_coordinates(array, coords, order=order, mode="constant", cval=fill)
        origin = (float(self._low[0]), float(self._low[1]))
        return SliceImage(pixels.astype(array.dtype, copy=False), origin, (du, dv))


def label_rgba(
    labels: np.ndarray,
    lut: np.ndarray,
    fill: bool,
    outline: bool,
    opacity: float,
) -> np.ndarray:
    """RGBA pixels of a 2D label slice: fill at ``opacity``, borders opaque.

    ``lut`` is ``(n, 4)`` uint8 with alpha 0 for background and hidden structures.
    """
    from ctseg_gui.render.overlay import fill_alphas, label_borders

    rgba = np.take(lut, labels, axis=0, mode="clip")
    inside, border = fill_alphas(fill, outline, opacity)
    alpha = np.where(label_borders(labels), border, inside).astype(np.uint8)
    alpha[rgba[..., 3] == 0] = 0
    rgba[..., 3] = alpha
    return rgba


def label_lut(table, visible: bool = True) -> np.ndarray:
    """``(n, 4)`` uint8 colour table of a :class:`~ctseg_gui.core.labels.LabelTable`."""
    top = max([e.value for e in table] + [0])
    lut = np.zeros((top + 1, 4), np.uint8)
    for entry in table:
        lut[entry.value, :3] = entry.color
        lut[entry.value, 3] = 255 if (entry.visible and visible) else 0
    return lut
