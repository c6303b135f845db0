"""The grid a click model sees: the image reoriented to RAS and resampled, and the way back.

Interactive bundles start with ``Orientationd(axcodes="RAS")`` and often ``Spacingd``. For the
axis-aligned CTs the app opens, both are a permutation and flips of the array axes plus a
per-axis rescale, so each model axis depends on exactly one image axis. That lets clicks map with
a few multiplications and results map back by fancy-indexing one 1-D table per axis, without
resampling a label volume. Oblique images use the nearest axis (as the viewer does).
"""

from __future__ import annotations

import numpy as np

from ctseg_gui.core.history import Region
from ctseg_gui.core.volume import Volume


class ModelGrid:
    """Maps between the image array (``[k, j, i]``) and the model's array.

    Parameters
    ----------
    image
        The CT.
    ras
        Reorder and flip the axes to RAS (model axis 0 toward the patient's right... as
        MONAI's ``Orientationd("RAS")``: axis 0 increases to R, 1 to A, 2 to S).
    pixdim
        Model spacing per model axis (mm); ``None`` keeps the image spacing.
    """

    def __init__(self, image: Volume, ras: bool, pixdim: tuple[float, ...] | None) -> None:
        self.image = image
        shape = image.array.shape
        spacing_kji = np.asarray(image.spacing, dtype=float)[::-1]
        self.axis = [0, 1, 2]  # model axis of each array axis
        self.flip = [False, False, False]
        if ras:
            for ax in range(3):
                column = np.asarray(image.direction)[:, 2 - ax]  # LPS vector of this array axis
                lps = int(np.argmax(np.abs(column)))
                self.axis[ax] = lps
                # RAS +x is LPS -x, +y is -y, +z is +z.
                self.flip[ax] = bool(column[lps] > 0) if lps < 2 else bool(column[lps] < 0)
        self.src_shape = shape
        self.model_spacing = np.empty(3)
        self.model_shape = [0, 0, 0]
        self.scale = np.ones(3)  # model index per image index, per array axis
        for ax in range(3):
            m = self.axis[ax]
            out = float(pixdim[m]) if pixdim is not None else spacing_kji[ax]
            self.scale[ax] = spacing_kji[ax] / out
            self.model_spacing[m] = out
            self.model_shape[m] = max(1, int(round(shape[ax] * self.scale[ax])))
        self.identity = not ras and pixdim is None

    def model_array(self) -> np.ndarray:
        """The image on the model grid (float32)."""
        array = self.image.array.astype(np.float32)
        if self.identity:
            return array
        for ax in range(3):
            if self.flip[ax]:
                array = np.flip(array, axis=ax)
        order = [self.axis.index(m) for m in range(3)]
        array = np.ascontiguousarray(array.transpose(order))
        if any(abs(self.scale[ax] - 1) > 1e-6 for ax in range(3)):
            from scipy import ndimage as ndi

            zoom = [self.model_shape[m] / array.shape[m] for m in range(3)]
            array = ndi.zoom(array, zoom, order=1, grid_mode=True, mode="nearest")
        return array

    def to_model(self, kji) -> list[int]:
        """Model index of an image voxel ``(k, j, i)``."""
        out = [0, 0, 0]
        for ax in range(3):
            x = kji[ax]
            if self.flip[ax]:
                x = self.src_shape[ax] - 1 - x
            m = self.axis[ax]
            out[m] = int(min(self.model_shape[m] - 1, np.floor((x + 0.5) * self.scale[ax])))
        return out

    def back(self, lo, hi, values: np.ndarray) -> tuple[Region, np.ndarray]:
        """Image region and mask of a model-grid box ``[lo, hi)`` holding ``values``."""
        if self.identity:
            return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)), values
        region, tables = [], []
        for ax in range(3):
            m = self.axis[ax]
            index = np.arange(self.src_shape[ax])
            source = self.src_shape[ax] - 1 - index if self.flip[ax] else index
            model = np.minimum(
                self.model_shape[m] - 1, np.floor((source + 0.5) * self.scale[ax])
            ).astype(int)
            inside = np.flatnonzero((model >= lo[m]) & (model < hi[m]))
            if not inside.size:
                empty = tuple(slice(0, 0) for _ in range(3))
                return empty, np.zeros((0, 0, 0), bool)  # type: ignore[return-value]
            region.append(slice(int(inside[0]), int(inside[-1]) + 1))
            tables.append(model[inside[0] : inside[-1] + 1] - lo[m])
        # values are in model-axis order; gather with each array axis's table on its model axis.
        order = [self.axis.index(m) for m in range(3)]
        gathered = values[np.ix_(*[tables[order[m]] for m in range(3)])]
        inverse = [self.axis[ax] for ax in range(3)]
        return tuple(region), np.ascontiguousarray(gathered.transpose(inverse))  # type: ignore[return-value]
