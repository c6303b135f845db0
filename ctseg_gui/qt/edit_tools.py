"""Paint brush and eraser for the slice views, and the autosave timer with its recovery prompt.

The brush follows the slice-view tool protocol: left drag paints the active structure (right drag,
or the eraser, clears it), a 2D disc in the view's plane or a 3D sphere, radius in mm, optionally
only on voxels inside an HU range. One drag is one undo step: dabs are collected while the mouse
moves and written through the label editor on release (each dab is drawn at once).

:class:`QtAutosave` ticks :class:`~ctseg_gui.interactive.autosave.Autosaver` every few seconds
(saving at most once a minute when modified) and offers earlier autosaves of the same image when
one is opened.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

# The array axis each view holds fixed (axial shows one k, coronal one j, sagittal one i) for an
# axis-aligned image; oblique images fall back to the axis closest to the view normal.
_VIEW_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


class QtBrushTool(QObject):
    """Brush / eraser on the active structure.

    Parameters
    ----------
    document, state
        The open document and the viewer state (active structure).
    radius_mm
        Brush radius.
    sphere
        Paint a 3D sphere instead of a disc in the view's plane.
    hu_range
        Only paint voxels whose HU lie in ``(low, high)``; ``None`` paints everything.
    erase
        Start as the eraser (right drag always erases).
    """

    painted = Signal(object)

    def __init__(
        self,
        document,
        state,
        radius_mm: float = 5.0,
        sphere: bool = False,
        hu_range: tuple[float, float] | None = None,
        erase: bool = False,
    ) -> None:
        super().__init__()
        self.document = document
        self.state = state
        self.radius_mm = float(radius_mm)
        self.sphere = sphere
        self.hu_range = hu_range
        self.erase = erase
        # (erase, view, [(region, voxels before the dab)]) while a drag lasts
        self._stroke = None
        self._last = None

    def press(self, event) -> bool:
        if self.document.editor is None or event.button not in (
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.RightButton,
        ):
            return False
        erase = self.erase or event.button == Qt.MouseButton.RightButton
        self._stroke = (erase, event.view, [])
        self._dab_at(event.world)
        self._redraw()
        return True

    def move(self, event) -> None:
        if self._stroke is None:
            return
        # Fill the gap since the last mouse position so a fast drag paints a band, not dots.
        start, end = np.asarray(self._last, dtype=float), np.asarray(event.world, dtype=float)
        steps = int(np.ceil(np.linalg.norm(end - start) / max(self.radius_mm / 2, 0.1)))
        for t in np.linspace(0, 1, steps + 1)[1:]:
            self._dab_at(start + (end - start) * t)
        self._redraw()

    def release(self, event) -> None:
        if self._stroke is None:
            return
        erase, _view, dabs = self._stroke
        self._stroke = None
        if not dabs:
            return
        array = self.document.labels.array
        box = tuple(
            slice(min(r[a].start for r, _ in dabs), max(r[a].stop for r, _ in dabs))
            for a in range(3)
        )
        after = array[box].copy()
        for region, before in reversed(dabs):  # back to the state before the stroke...
            array[region] = before
        # ...so the editor records the whole stroke as one undo step.
        self.document.editor.apply(box, after, "erase" if erase else "paint")
        self.painted.emit(box)

    def _redraw(self) -> None:
        # Draw at once without a history step; release writes the stroke through the editor.
        dabs = self._stroke[2]
        if dabs:
            self.document.editor.changed.emit(
                tuple(
                    slice(min(r[a].start for r, _ in dabs), max(r[a].stop for r, _ in dabs))
                    for a in range(3)
                )
            )

    def _dab_at(self, world) -> None:
        from ctseg_gui.interactive import editing  # scipy: not on the window's start-up path

        erase, view, dabs = self._stroke
        self._last = np.asarray(world, dtype=float)
        image = self.document.image
        ijk = image.world_to_index(world)
        axis = None if self.sphere else _plane_axis(image, view.view)
        labels = self.document.labels
        region, mask = editing.brush_mask(
            ijk, self.radius_mm, image.spacing, labels.array.shape, axis
        )
        if not mask.any():
            return
        if self.hu_range is not None:
            hu = image.array[region]
            mask &= (hu >= self.hu_range[0]) & (hu <= self.hu_range[1])
        value = self.state.active_label
        current = labels.array[region]
        dabs.append((region, current.copy()))
        if erase:
            labels.array[region] = np.where(mask & (current == value), 0, current)
        else:
            labels.array[region] = np.where(mask, value, current)


def _plane_axis(image, view_name: str) -> int:
    """Array axis (``[k, j, i]``) most aligned with the view's normal."""
    normal = {"axial": 2, "coronal": 1, "sagittal": 0}[view_name]  # LPS component
    columns = np.abs(np.asarray(image.direction))[normal]  # i, j, k weights
    return 2 - int(np.argmax(columns))


class QtAutosave(QObject):
    """Autosaves the document's labels (at most once a minute when modified).

    Signals
    -------
    saved(object)
        Path of the autosave just written.
    """

    saved = Signal(object)

    def __init__(
        self, document, interval_s: float = 60.0, check_ms: int = 5000, session_state=None
    ) -> None:
        super().__init__()
        self.document = document
        self.session_state = session_state  # () -> clicks, measurements, view as JSON
        self.interval_s = interval_s
        self._saver = None
        self._timer = QTimer(self, interval=check_ms)
        self._timer.timeout.connect(self.tick)
        self._timer.start()
        document.labels_replaced.connect(self._on_document_labels_replaced)
        document.closed.connect(self._on_document_closed)
        if document.editor is not None:
            self._on_document_labels_replaced(document.labels)

    def _on_document_labels_replaced(self, _labels) -> None:
        from ctseg_gui.interactive.autosave import Autosaver

        self._saver = Autosaver(
            self.document.editor, self.interval_s, session_state=self.session_state
        )

    def _on_document_closed(self) -> None:
        if self._saver is not None:
            self._saver.discard()  # closing is a decision the user confirmed
        self._saver = None

    def tick(self):
        """Save if due; returns the path written, if any."""
        if self._saver is None:
            return None
        try:
            path = self._saver.tick()
        except Exception:  # noqa: BLE001 - a failed autosave must never disturb editing
            return None
        if path is not None:
            self.saved.emit(path)
        return path

    def save_now(self):
        """Write the autosave at once (labels and session extras); returns its path."""
        if self._saver is None:
            return None
        path = self._saver.save_now()
        self.saved.emit(path)
        return path

    def discard(self) -> None:
        """Drop the autosave (after the user saved the labels)."""
        if self._saver is not None:
            self._saver.discard()

    @staticmethod
    def offer_recovery(parent, image) -> object | None:
        """Ask whether to restore an autosave of ``image``; the recovered LabelMap or ``None``."""
        recovered = QtAutosave.offer_session_recovery(parent, image)
        return None if recovered is None else recovered[0]

    @staticmethod
    def offer_session_recovery(parent, image) -> tuple | None:
        """As :meth:`offer_recovery`: ``(labels, session extras or None)`` or ``None``."""
        from ctseg_gui.interactive.autosave import discard_recovery, recover, recoveries_for
        from ctseg_gui.qt.dialogs import ask_yes_no

        found = recoveries_for(image)
        if not found:
            return None
        if ask_yes_no(
            parent, "Recover unsaved labels?", f"Found {found[0].describe()}. Restore them?"
        ):
            return recover(found[0], image), found[0].session
        discard_recovery(found[0])
        return None
