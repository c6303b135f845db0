"""The open document: one image, its label map, and the editor all label changes go through.

Panels (models, click tools, label panel, views) attach to a single :class:`Document` and listen to
its signals instead of holding their own copies, so a new image or label map reaches all of them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from psygnal import Signal

from ctseg_gui.core.history import LabelEditor
from ctseg_gui.core.labels import LabelMap, LabelTable
from ctseg_gui.core.volume import Volume


class Document:
    """Image + label map + :class:`LabelEditor` + where they came from.

    Signals
    -------
    image_loaded(volume)
        A new image replaced the old one (its label map starts empty; ``labels_replaced`` follows).
    labels_replaced(labels)
        The label map object changed (loaded from a file, or a new image); reattach to ``editor``.
    table_changed()
        Names, colours or visibility in the label table changed (no voxel changed).
    closed()
        The image was closed.
    """

    image_loaded = Signal(object)
    labels_replaced = Signal(object)
    table_changed = Signal()
    closed = Signal()

    def __init__(self) -> None:
        self.image: Volume | None = None
        self.labels: LabelMap | None = None
        self.editor: LabelEditor | None = None
        self.path: Path | None = None
        self.labels_path: Path | None = None

    @property
    def has_image(self) -> bool:
        """Whether an image is open."""
        return self.image is not None

    @property
    def modified(self) -> bool:
        """Whether the label map has edits not yet saved."""
        return bool(self.editor and self.editor.modified)

    def set_image(self, volume: Volume, path: str | Path | None = None) -> None:
        """Make ``volume`` the open image with an empty label map."""
        self.image = volume
        self.path = Path(path) if path else None
        # The old labels lie on the old grid: views that redraw on image_loaded must not cut
        # them with the new image's geometry (an IndexError when the new image is larger).
        self.labels = self.editor = None
        self.image_loaded.emit(volume)
        self._attach(_empty_labels(volume), None)

    def set_labels(self, labels: LabelMap, path: str | Path | None = None) -> None:
        """Replace the label map by one on the image's grid (a file the user opened)."""
        if self.image is None:
            raise RuntimeError("open an image before loading labels")
        self._attach(labels, Path(path) if path else None)

    def apply_result(self, result: LabelMap, description: str = "model result") -> bool:
        """Write a model's label map into the current one as one undoable step.

        The result's table entries (names, colours) are merged into the document's table, so a
        whole-body result brings its 104 names along. Returns whether any voxel changed.
        """
        if self.editor is None or self.labels is None:
            raise RuntimeError("open an image before applying a result")
        for entry in result.table:
            self.labels.table.entries[entry.value] = entry
        if result.provenance is not None:
            self.labels.provenance = result.provenance
        changed = self.editor.replace_all(np.asarray(result.array), description)
        self.table_changed.emit()
        return changed

    def update_label(self, value: int, **changes) -> None:
        """Change name, colour or visibility of one structure and tell the views."""
        if self.labels is None:
            return
        self.labels.table.ensure([value])
        self.labels.table.update(value, **changes)
        self.table_changed.emit()

    def apply_table(self, table) -> None:
        """Take names, colours and groups from ``table`` for the values it lists."""
        if self.labels is None:
            return
        for entry in table:
            old = self.labels.table.entries.get(entry.value)
            visible = old.visible if old is not None else entry.visible
            self.labels.table.entries[entry.value] = replace(entry, visible=visible)
        self.table_changed.emit()

    def set_all_visible(self, visible: bool, values=None) -> None:
        """Show or hide many structures at once (one signal)."""
        if self.labels is None:
            return
        for value in values if values is not None else list(self.labels.table.entries):
            self.labels.table.update(int(value), visible=bool(visible))
        self.table_changed.emit()

    def close(self) -> None:
        """Forget image and labels."""
        self.image = self.labels = self.editor = None
        self.path = self.labels_path = None
        self.closed.emit()

    def _attach(self, labels: LabelMap, path: Path | None) -> None:
        self.labels = labels
        self.labels_path = path
        self.editor = LabelEditor(labels)
        self.labels_replaced.emit(labels)


def _empty_labels(volume: Volume) -> LabelMap:
    # LabelMap() scans its array for values to name; an all-background map has none, and the scan
    # of a 512 x 512 x 400 map costs a second on the way to the first image.
    labels = LabelMap.__new__(LabelMap)
    labels.array = np.zeros(volume.array.shape, dtype=np.uint16)
    labels.image = volume
    labels.table = LabelTable()
    return labels
