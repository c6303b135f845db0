"""Brush / eraser strokes in the slice views (one undo step each) and the autosave timer."""

from __future__ import annotations

import numpy as np
from mouse import stroke
from PySide6.QtCore import Qt


def _on_slice(window, image, k):
    cursor = image.world_to_index(window.state.cursor)
    window.state.cursor = image.index_to_world((cursor[0], cursor[1], k))
    window.render_all()


def test_brush_stroke_is_one_undo_step_and_eraser_spares_others(
    qtbot, viewer, open_and_wait, abdomen_ct
):
    from ctseg_gui.qt.edit_tools import QtBrushTool

    open_and_wait(viewer, abdomen_ct)
    image = viewer.document.image
    labels = viewer.document.labels.array
    editor = viewer.document.editor
    brush = QtBrushTool(viewer.document, viewer.state, radius_mm=6.0)
    viewer.set_tool(brush)
    axial = viewer.slice_views["axial"]
    _on_slice(viewer, image, 60)
    empty = labels.copy()
    stroke(qtbot, axial, image, (40, 50, 60), (70, 50, 60))
    painted = labels.copy()
    value = viewer.state.active_label
    assert set(np.nonzero(painted == value)[0]) == {60}  # a disc stays in the view's slice
    assert painted[60, 50, 40] == value and painted[60, 50, 70] == value
    assert (painted == value).sum() > 30 * 3  # a band, not a line of dots
    other = labels.copy()
    other[60, 50, 55] = 7  # another structure under the eraser
    assert editor.apply(None, other, "other")
    stroke(qtbot, axial, image, (35, 50, 60), (75, 50, 60), Qt.MouseButton.RightButton)
    assert not (labels == value).any() and labels[60, 50, 55] == 7
    assert editor.undo() and np.array_equal(labels[labels != 7], painted[labels != 7])
    assert editor.undo() and editor.undo()  # 'other', then the whole paint stroke at once
    assert np.array_equal(labels, empty)
    assert editor.redo()
    assert np.array_equal(labels, painted)


def test_sphere_brush_limited_to_hu_range(qtbot, viewer, open_and_wait, abdomen_ct):
    from ctseg_gui.qt.edit_tools import QtBrushTool

    open_and_wait(viewer, abdomen_ct)
    image = viewer.document.image
    viewer.set_tool(QtBrushTool(viewer.document, viewer.state, 12.0, True, (-50.0, 100.0)))
    _on_slice(viewer, image, 60)
    axial = viewer.slice_views["axial"]
    stroke(qtbot, axial, image, (50, 40, 60), (52, 40, 60))
    mask = viewer.document.labels.array == viewer.state.active_label
    assert len(set(np.nonzero(mask)[0])) > 3  # a sphere spans slices
    hu = image.array[mask]
    assert mask.any() and hu.min() >= -50 and hu.max() <= 100


def test_autosave_timer_and_recovery_prompt(
    qtbot, viewer, open_and_wait, abdomen_ct, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    from ctseg_gui.interactive import editing
    from ctseg_gui.qt.edit_tools import QtAutosave

    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path))
    open_and_wait(viewer, abdomen_ct)
    autosave = QtAutosave(viewer.document, interval_s=0.0, check_ms=50)
    assert autosave.tick() is None  # nothing edited yet
    editing.paint(viewer.document.editor, 3, (60, 50, 40), 9.0)
    with qtbot.waitSignal(autosave.saved, timeout=5000):
        pass
    answer = QMessageBox.StandardButton.Yes
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: answer)
    recovered = QtAutosave.offer_recovery(viewer, viewer.document.image)
    assert np.array_equal(recovered.array, viewer.document.labels.array)
    answer = QMessageBox.StandardButton.No
    assert QtAutosave.offer_recovery(viewer, viewer.document.image) is None
    assert QtAutosave.offer_recovery(viewer, viewer.document.image) is None  # declined: gone
