"""Every change to a label map goes through :class:`LabelEditor`, which records undo/redo steps.

A step stores only the bounding box of the voxels that changed, before and after, so a brush stroke
on a 512 x 512 x 400 map costs kilobytes, and a whole model result costs its own bounding box.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from psygnal import Signal

from ctseg_gui.core.labels import LabelMap

Region = tuple[slice, slice, slice]


@dataclass(frozen=True)
class EditStep:
    """One undoable change: the voxels of ``region`` before and after."""

    description: str
    region: Region
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        """Memory the step holds."""
        return self.before.nbytes + self.after.nbytes


def changed_region(before: np.ndarray, after: np.ndarray) -> Region | None:
    """Bounding box (``[k, j, i]`` slices) of the voxels that differ, ``None`` when none do."""
    diff = before != after
    if not diff.any():
        return None
    region = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(diff.any(axis=others))
        region.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(region)  # type: ignore[return-value]


def _offset(outer: Region, inner: Region) -> Region:
    return tuple(
        slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner, strict=True)
    )  # type: ignore[return-value]


class LabelEditor:
    """Applies edits to a :class:`LabelMap` and keeps the undo/redo history.

    Parameters
    ----------
    labels
        The label map edited in place.
    max_steps
        Oldest steps are dropped beyond this many (at least 50 are kept).

    Signals
    -------
    changed(region)
        Voxels in ``region`` (``[k, j, i]`` slices) changed; views redraw that part.
    history_changed()
        What can be undone or redone changed.
    """

    changed = Signal(object)
    history_changed = Signal()

    def __init__(self, labels: LabelMap, max_steps: int = 100) -> None:
        self.labels = labels
        self.max_steps = max(50, max_steps)
        self._undo: list[EditStep] = []
        self._redo: list[EditStep] = []
        self._saved_marker: EditStep | None = None

    # ---- editing ---------------------------------------------------------------------------
    def apply(self, region: Region | None, values: np.ndarray, description: str) -> bool:
        """Write ``values`` into ``region`` (the whole map when ``None``) as one undoable step.

        Returns whether any voxel changed; an edit that changes nothing records no step.
        """
        region = region or tuple(slice(0, n) for n in self.labels.array.shape)
        current = self.labels.array[region]
        values = np.asarray(values).astype(current.dtype, copy=False)
        inner = changed_region(current, values)
        if inner is None:
            return False
        box = _offset(region, inner)
        step = EditStep(description, box, self.labels.array[box].copy(), values[inner].copy())
        self.labels.array[box] = step.after
        self._push(step)
        self.labels.table.ensure(np.unique(step.after))
        self.changed.emit(box)
        return True

    def paint(
        self,
        mask: np.ndarray,
        value: int,
        description: str,
        region: Region | None = None,
        only_value: int | None = None,
    ) -> bool:
        """Set voxels under ``mask`` to ``value`` (0 erases).

        ``mask`` covers ``region`` (or the whole map); ``only_value`` restricts the edit to voxels
        currently holding that value (e.g. erase only the active structure).
        """
        region = region or tuple(slice(0, n) for n in self.labels.array.shape)
        current = self.labels.array[region]
        target = mask if only_value is None else mask & (current == only_value)
        return self.apply(region, np.where(target, value, current), description)

    def replace_all(self, array: np.ndarray, description: str) -> bool:
        """Replace the whole map (a model result) as one step storing only what changed."""
        if array.shape != self.labels.array.shape:
            raise ValueError(f"shape {array.shape} != label map {self.labels.array.shape}")
        if array.size and int(array.max()) > np.iinfo(self.labels.array.dtype).max:
            self.labels.array = self.labels.array.astype(array.dtype)  # e.g. >255 structures
        return self.apply(None, array, description)

    # ---- history ---------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_description(self) -> str:
        return self._undo[-1].description if self._undo else ""

    @property
    def redo_description(self) -> str:
        return self._redo[-1].description if self._redo else ""

    def undo(self) -> bool:
        """Revert the newest step; returns whether there was one."""
        if not self._undo:
            return False
        step = self._undo.pop()
        self.labels.array[step.region] = step.before
        self._count(step, -1)
        self._redo.append(step)
        self.changed.emit(step.region)
        self.history_changed.emit()
        return True

    def redo(self) -> bool:
        """Re-apply the newest undone step; returns whether there was one."""
        if not self._redo:
            return False
        step = self._redo.pop()
        self.labels.array[step.region] = step.after
        self._count(step, 1)
        self._undo.append(step)
        self.changed.emit(step.region)
        self.history_changed.emit()
        return True

    @property
    def history_bytes(self) -> int:
        """Memory held by undo and redo steps."""
        return sum(s.nbytes for s in self._undo) + sum(s.nbytes for s in self._redo)

    # ---- unsaved changes -------------------------------------------------------------------
    @property
    def modified(self) -> bool:
        """Whether the map differs from when it was last saved (or loaded)."""
        newest = self._undo[-1] if self._undo else None
        return newest is not self._saved_marker

    def mark_saved(self) -> None:
        """Record that the current state is on disk."""
        self._saved_marker = self._undo[-1] if self._undo else None
        self.history_changed.emit()

    def _count(self, step: EditStep, change: int) -> None:
        # The provenance of exports summarises clicks and edits from this tally; it outlives
        # the undo stack, which drops its oldest steps.
        if self.labels.edit_tally is None:
            self.labels.edit_tally = Counter()
        self.labels.edit_tally[step.description] += change

    def _push(self, step: EditStep) -> None:
        self._count(step, 1)
        self._undo.append(step)
        if len(self._undo) > self.max_steps:
            del self._undo[0]
        self._redo.clear()
        self.history_changed.emit()
