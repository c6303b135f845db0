"""Grey CT slice plus label overlay in one table look-up per pixel (pure numpy).

A displayed pixel depends only on its grey value (0-255 after window/level), its label and
whether it lies on a label border. So instead of colouring labels into an RGBA slice and
blending it over the grey one in several integer passes per frame, the blend of every
``(label, border, grey)`` triple is computed once into a table (rebuilt only when colours,
visibility, fill, outline or opacity change), and composing a slice while scrolling is one
``np.take``. The result is bit-identical to blending :func:`~ctseg_gui.render.slicing.label_rgba`
over the grey slice: ``(grey * (255 - a) + colour * a + 127) // 255``.
"""

from __future__ import annotations

import numpy as np

#: Above this many table rows, label values are first mapped to a compact palette of the
#: distinct (colour, alpha) rows, so that sparse high label values do not make a huge table.
_DIRECT_ROWS = 1024


def fill_alphas(fill: bool, outline: bool, opacity: float) -> tuple[int, int]:
    """Alpha (0-255) of a shown label's inside and of its border pixels."""
    inside = int(round(255 * opacity)) if fill else 0
    border = max(int(round(255 * opacity)), 230) if outline else inside
    return inside, border


def label_borders(labels: np.ndarray) -> np.ndarray:
    """Pixels whose label differs from one of their four neighbours."""
    border = np.zeros(labels.shape, bool)
    vertical = labels[1:, :] != labels[:-1, :]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    horizontal = labels[:, 1:] != labels[:, :-1]
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    return border


class OverlayTable:
    """Blended RGBA of every ``(label, border, grey)``, for :meth:`compose`.

    Parameters
    ----------
    lut
        ``(n, 4)`` uint8 label colours; alpha 0 marks background and hidden structures
        (see :func:`~ctseg_gui.render.slicing.label_lut`).
    fill, outline, opacity
        Display options, as in :func:`~ctseg_gui.render.slicing.label_rgba`.
    """

    def __init__(self, lut: np.ndarray, fill: bool, outline: bool, opacity: float) -> None:
        lut = np.asarray(lut, np.uint8)
        self.key = (lut.tobytes(), bool(fill), bool(outline), float(opacity))
        self.size = len(lut)
        self.any_shown = bool(lut[:, 3].any()) and (fill or outline)
        if self.size > _DIRECT_ROWS:
            palette, remap = np.unique(lut, axis=0, return_inverse=True)
            self._remap: np.ndarray | None = remap.reshape(-1).astype(np.int32)
        else:
            palette, self._remap = lut, None
        inside, border = fill_alphas(fill, outline, opacity)
        self._borders = border != inside  # else border rows equal inside rows: skip the test
        shown = palette[:, 3] > 0
        # Row 2 * p + b: palette entry p, b = 1 on borders.
        alpha = np.zeros((len(palette), 2), np.uint32)
        alpha[shown, 0] = inside
        alpha[shown, 1] = border
        self._alpha = alpha.reshape(-1).astype(np.uint8)
        alpha = alpha.reshape(-1, 1, 1)
        colour = np.repeat(palette[:, :3].astype(np.uint32), 2, axis=0)[:, None, :]
        grey = np.arange(256, dtype=np.uint32)[None, :, None]
        rgb = (grey * (255 - alpha) + colour * alpha + 127) // 255  # (rows, 256, 3)
        rgba = np.empty(rgb.shape[:2] + (4,), np.uint8)
        rgba[..., :3] = rgb
        rgba[..., 3] = 255
        self._table = rgba.view(np.uint32).reshape(-1)  # one packed RGBA word per entry
        self._index: np.ndarray | None = None

    def codes(self, labels: np.ndarray) -> np.ndarray:
        """Table row of every pixel: ``2 * palette entry + border``, as ``np.intp``."""
        # Values outside the table clip to its ends, as in ``label_rgba`` (skip the scan when the
        # dtype cannot hold such values: the usual uint8 maps of up to 255 labels).
        if labels.dtype.kind != "u" or (
            np.iinfo(labels.dtype).max >= self.size and labels.max(initial=0) >= self.size
        ):
            codes = np.clip(labels, 0, self.size - 1)
        else:
            codes = labels
        if self._remap is not None:
            codes = np.take(self._remap, codes)
        index = self._index
        if index is None or index.shape != labels.shape:
            index = self._index = np.empty(labels.shape, np.intp)
        np.copyto(index, codes, casting="unsafe")
        index <<= 1
        if self._borders:
            index |= label_borders(labels)
        return index

    def alpha(self, labels: np.ndarray) -> np.ndarray:
        """Alpha (0-255) each pixel of a label slice is drawn with; 0 where no label shows."""
        return np.take(self._alpha, self.codes(labels))

    def compose(self, grey: np.ndarray, labels: np.ndarray, out: np.ndarray | None = None):
        """Opaque ``(rows, cols, 4)`` uint8 RGBA of a grey slice under a label slice.

        ``out`` (an earlier result of the same shape) is overwritten instead of allocating.
        """
        index = self.codes(labels)
        index <<= 8
        index |= grey
        if out is None or out.shape[:2] != labels.shape or out.shape[2:] != (4,):
            out = np.empty(labels.shape + (4,), np.uint8)
        np.take(self._table, index, out=out.view(np.uint32).reshape(labels.shape))
        return out
