"""Clicks and the session that turns them into undoable label edits.

A :class:`Click` is a voxel index ``(i, j, k)`` (the package's index order) and a sign. A
:class:`ClickSession` keeps the clicks for one structure, asks a refiner (the model-free
:class:`~ctseg_gui.interactive.geodesic.GeodesicRefiner` or a deep model) for the new mask, and
writes the change through :class:`~ctseg_gui.core.history.LabelEditor`, so every click is one undo
step storing only its bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ctseg_gui.core.history import LabelEditor, Region


@dataclass(frozen=True)
class Click:
    """One guidance click.

    Parameters
    ----------
    index
        Voxel index ``(i, j, k)`` (column, row, slice).
    positive
        ``True`` adds tissue (left click), ``False`` removes it (right or Shift click).
    """

    index: tuple[int, int, int]
    positive: bool = True

    @property
    def kji(self) -> tuple[int, int, int]:
        """The index in array order ``[k, j, i]``."""
        i, j, k = self.index
        return (k, j, i)

    @classmethod
    def from_world(cls, image, xyz, positive: bool = True) -> Click:
        """The click at LPS point ``xyz`` (mm) of ``image`` (a Volume), rounded to its voxel."""
        ijk = np.rint(image.world_to_index(xyz)).astype(int)
        if not image.contains_index(ijk):
            raise ValueError(f"point {tuple(xyz)} lies outside the image")
        return cls((int(ijk[0]), int(ijk[1]), int(ijk[2])), positive)


class Refiner(Protocol):
    """Anything that updates a binary mask from clicks (model-free or a deep model)."""

    def refine(self, mask: np.ndarray, clicks: list[Click]) -> tuple[Region, np.ndarray]:
        """New mask values after the last of ``clicks``.

        ``mask`` is the current boolean mask of the structure (``[k, j, i]``, whole image);
        returns a region and the boolean mask inside it (everything outside is unchanged).
        """
        ...


class ClickSession:
    """Clicks on one structure, applied in place through the label editor.

    Parameters
    ----------
    editor
        The label editor of the open label map.
    label_value
        The structure the clicks edit.
    refiner
        Computes each update (see :class:`Refiner`).
    overwrite_others
        Whether a positive click may take voxels that belong to another structure; by default it
        only claims background so clicking never damages neighbouring structures.
    """

    def __init__(
        self,
        editor: LabelEditor,
        label_value: int,
        refiner: Refiner,
        overwrite_others: bool = False,
    ) -> None:
        self.editor = editor
        self.label_value = int(label_value)
        self.refiner = refiner
        self.overwrite_others = overwrite_others
        self.clicks: list[Click] = []

    def mask(self) -> np.ndarray:
        """Current boolean mask of the structure."""
        return self.editor.labels.array == self.label_value

    def add(self, click: Click) -> bool:
        """Apply one click; returns whether any voxel changed (one undo step when it did)."""
        self.clicks.append(click)
        region, values = self.refiner.refine(self.mask(), list(self.clicks))
        return self.apply_mask(
            region, values, f"{'positive' if click.positive else 'negative'} click"
        )

    def apply_mask(self, region: Region, values: np.ndarray, description: str) -> bool:
        """Write a boolean mask of the structure in ``region`` as one undoable step."""
        current = self.editor.labels.array[region]
        own = current == self.label_value
        claim = values & ~own
        if not self.overwrite_others:
            claim &= current == 0
        result = np.where(own & ~values, 0, current)
        result = np.where(claim, self.label_value, result)
        return self.editor.apply(region, result, description)

    def clear(self) -> None:
        """Forget the clicks (the mask stays as it is)."""
        self.clicks.clear()
