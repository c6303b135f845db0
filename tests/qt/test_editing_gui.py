"""Editing in the main window: save labels, brush toolbar, undo menu, structures, click model."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from bundles import build_deepgrow_bundle
from mouse import stroke, voxel_pos
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from ctseg_gui.qt import label_actions


def _on_slice(window, k):
    image = window.document.image
    cursor = image.world_to_index(window.state.cursor)
    window.state.cursor = image.index_to_world((cursor[0], cursor[1], k))
    window.render_all()


@pytest.fixture
def opened(viewer, open_and_wait, abdomen_ct, tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    open_and_wait(viewer, abdomen_ct)
    _on_slice(viewer, 60)
    return viewer


def test_save_labels_round_trip_and_ctrl_s(qtbot, opened, abdomen_ct, tmp_path):
    from ctseg_gui.interactive import editing
    from ctseg_gui.qt.edit_tools import QtAutosave

    window = opened
    editor = window.document.editor
    autosave = window.autosave = QtAutosave(window.document, interval_s=0.0, check_ms=60_000)
    label_actions.add_structure(window, "lesion")
    editing.paint(editor, 1, (40, 50, 60), 9.0, plane_axis=None)
    written_autosave = autosave.tick()
    assert written_autosave is not None and written_autosave.exists()
    assert window.document.modified and window.windowTitle().startswith("abdomen_3mm.nii.gz *")

    out = tmp_path / "out" / "edited.nii.gz"
    out.parent.mkdir()
    assert label_actions.save_labels(window, out)
    assert not window.document.modified and not written_autosave.exists()
    assert "*" not in window.windowTitle()
    source, saved = nib.load(str(abdomen_ct)), nib.load(str(out))
    np.testing.assert_allclose(saved.affine, source.affine, atol=1e-5)
    array = window.document.labels.array
    assert np.array_equal(np.asarray(saved.dataobj).transpose(2, 1, 0), array)
    sidecar = json.loads((tmp_path / "out" / "edited.labels.json").read_text())
    assert "lesion" in json.dumps(sidecar)

    # Ctrl+S saves again to the same file, now with a second edit.
    editing.paint(editor, 1, (80, 50, 60), 6.0)
    assert window.document.modified
    window.save_labels_action.trigger()
    assert not window.document.modified
    again = np.asarray(nib.load(str(out)).dataobj).transpose(2, 1, 0)
    assert np.array_equal(again, array) and again[60, 50, 80] == 1


def test_save_error_names_the_file_and_keeps_edits(opened, tmp_path):
    from ctseg_gui.interactive import editing

    window = opened
    editing.paint(window.document.editor, 1, (40, 50, 60), 6.0)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "labels.nii.gz"
    assert not label_actions.save_labels(window, target)
    assert str(target) in window.errors[-1] and "not saved" in window.errors[-1]
    assert window.document.modified


def test_unsaved_prompt_offers_save(opened, tmp_path, monkeypatch):
    from ctseg_gui.interactive import editing

    window = opened
    editing.paint(window.document.editor, 1, (40, 50, 60), 6.0)
    asked = []

    def question(parent, title, text, buttons, default=None):
        asked.append(buttons)
        return QMessageBox.StandardButton.Save

    target = tmp_path / "prompted.nii.gz"
    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.interactive = True
    try:
        assert window._confirm_discard()
    finally:
        window.interactive = False
    assert asked and asked[0] & QMessageBox.StandardButton.Save
    assert target.exists() and not window.document.modified


def test_brush_toolbar_settings_and_undo_menu(qtbot, opened):
    window = opened
    controls = window.edit_controls
    image = window.document.image
    labels = window.document.labels.array
    axial = window.slice_views["axial"]
    controls.brush_action.trigger()
    assert controls.brush_action.isChecked() and axial._tool is controls.brush
    controls.size_box.setValue(8.0)
    bound = {a.shortcut().toString(): a for a in window.actions()}
    assert bound["B"] is controls.brush_action and bound["E"] is controls.eraser_action
    bound["]"].trigger()  # larger brush
    assert controls.size_box.value() == 10.0
    controls.size_slider.setValue(9)
    assert controls.size_box.value() == 9.0
    assert controls.structure_box.currentText() == "1: label 1 (new)"
    controls.shape_box.setCurrentIndex(1)  # 3D sphere
    controls.hu_check.setChecked(True)
    controls.hu_min.setValue(-50)
    controls.hu_max.setValue(100)
    stroke(qtbot, axial, image, (50, 40, 60), (54, 40, 60), moves=4)
    mask = labels == window.state.active_label
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    assert len(slices) > 3 and slices.max() - slices.min() <= 2 * 9 / 3 + 1  # 9 mm over 3 mm
    hu = image.array[mask]
    assert hu.min() >= -50 and hu.max() <= 100
    assert controls.structure_box.currentText() == "1: label 1"  # the stroke named it
    assert window.undo_action.isEnabled() and window.undo_action.text() == "Undo paint"
    painted = labels.copy()

    controls.eraser_action.trigger()
    controls.hu_check.setChecked(False)
    controls.shape_box.setCurrentIndex(0)
    stroke(qtbot, axial, image, (45, 40, 60), (60, 40, 60), moves=4)
    assert not (labels[60] == window.state.active_label).any()
    assert (labels == window.state.active_label).any()  # the disc erased one slice only
    assert window.undo_action.text() == "Undo erase"

    window.undo_action.trigger()  # the whole eraser stroke at once
    assert np.array_equal(labels, painted)
    assert window.redo_action.text() == "Redo erase"
    assert "Ctrl+Y" in [s.toString() for s in window.redo_action.shortcuts()]
    window.undo_action.trigger()
    assert not labels.any() and not window.undo_action.isEnabled()
    window.redo_action.trigger()
    assert np.array_equal(labels, painted)


def test_structure_picker_and_new_structure(opened):
    window = opened
    box = window.edit_controls.structure_box
    assert box.currentText() == "1: label 1 (new)"
    value = label_actions.add_structure(window, "tumour")
    assert value == 1 and window.state.active_label == 1 and box.currentText() == "1: tumour"
    second = label_actions.add_structure(window, "cyst")
    assert second == 2 and box.currentText() == "2: cyst"
    box.activated.emit(box.findData(1))
    assert window.state.active_label == 1


def test_fill_holes_and_islands_are_undoable(opened):
    from ctseg_gui.interactive import editing

    window = opened
    editor = window.document.editor
    array = window.document.labels.array
    ring = np.zeros(array.shape, bool)
    ring[55:65, 30:60, 30:60] = True
    ring[57:63, 40:50, 40:50] = False  # an enclosed hole
    ring[80:82, 10:12, 10:12] = True  # a small island (8 voxels = 0.216 mL)
    editor.paint(ring, 1, "test shape")
    before = array.copy()

    window.fill_holes_action.trigger()
    assert (array[57:63, 40:50, 40:50] == 1).all()
    assert window.undo_action.text() == "Undo fill holes"
    window.undo_action.trigger()
    assert np.array_equal(array, before)

    window.edit_controls.island_box.setValue(0.1)  # smaller than the island: it stays
    window.small_islands_action.trigger()
    assert array[80, 10, 10] == 1
    window.edit_controls.island_box.setValue(0.5)
    window.small_islands_action.trigger()
    assert array[80, 10, 10] == 0 and array[55, 30, 30] == 1
    window.undo_action.trigger()
    window.largest_island_action.trigger()
    assert array[80, 10, 10] == 0 and (array == 1).sum() == (before == 1).sum() - 8
    window.undo_action.trigger()
    assert np.array_equal(array, before)
    assert not editing.keep_largest_island(editor, 7)  # nothing of structure 7


def test_label_management_with_confirmation(qtbot, opened, monkeypatch):
    from ctseg_gui.interactive import editing

    window = opened
    document, editor = window.document, window.document.editor
    array = document.labels.array
    for name in ("liver", "tumour", "cyst"):
        label_actions.add_structure(window, name)
    editing.paint(editor, 1, (40, 50, 60), 9.0, plane_axis=None)
    editing.paint(editor, 2, (80, 50, 60), 6.0, plane_axis=None)
    editing.paint(editor, 3, (60, 30, 60), 6.0, plane_axis=None)
    assert label_actions.rename_structure(window, 2, "  lesion ")
    assert document.labels.table[2].name == "lesion"
    assert label_actions.recolour_structure(window, 2, (10, 200, 30))
    assert document.labels.table[2].color == (10, 200, 30)
    panel = window.label_panel
    panel.refresh()
    names = [panel.model.data(panel.model.index(r, 3)) for r in range(panel.model.rowCount())]
    assert "lesion" in names

    answers = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers[0])
    before = array.copy()
    window.interactive = True
    try:
        assert not label_actions.delete_structure(window, 3)  # declined: nothing happens
        assert np.array_equal(array, before) and 3 in document.labels.table
        answers[0] = QMessageBox.StandardButton.Yes
        assert label_actions.delete_structure(window, 3)
        assert not (array == 3).any() and 3 not in document.labels.table
        assert label_actions.merge_structure(window, 2, 1)
    finally:
        window.interactive = False
    assert not (array == 2).any() and (array == 1).sum() == ((before == 1) | (before == 2)).sum()
    assert 2 not in document.labels.table
    assert window.undo_action.text() == "Undo merge structures"
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert np.array_equal(array, before)  # voxels of the merge and the delete come back

    # The label table's context menu acts on the row under the mouse.
    panel.refresh()
    table = panel.table
    row = next(r for r in range(panel.proxy.rowCount()) if panel.proxy.index(r, 2).data() == 1)
    rect = table.visualRect(panel.proxy.index(row, 3))
    table.customContextMenuRequested.emit(rect.center())
    menu = window.label_context_menu
    texts = [a.text() for a in menu.actions()]
    assert "Rename 'liver'…" in texts and "Delete 'liver'…" in texts
    qtbot.waitUntil(menu.isVisible)
    menu.close()
    # The Labels menu lists the actions for the active structure.
    window.state.active_label = 1
    window.labels_menu.aboutToShow.emit()
    texts = [a.text() for a in window.labels_menu.actions()]
    assert "New structure…" in texts and "Merge 'liver' into…" in texts


def test_click_model_choice_runs_an_installed_deepgrow_model_in_the_worker(
    qtbot, viewer, open_and_wait, small_ct, tmp_path, monkeypatch
):
    from ctseg_gui.inference.manager import install
    from ctseg_gui.interactive.deep import refine_with_model
    from ctseg_gui.qt.click_tool import WorkerRefiner

    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    build_deepgrow_bundle(tmp_path / "bundle")
    installed = install(tmp_path / "bundle", "deepgrow_3d")
    open_and_wait(viewer, small_ct)
    controls = viewer.edit_controls
    controls.refresh_click_models()
    items = [controls.click_box.itemText(i) for i in range(controls.click_box.count())]
    assert items == ["Built-in (no weights)", "Deepgrow 3D (interactive, any structure)"]
    with qtbot.waitSignal(controls.click_model_changed) as changed:
        controls.select_click_model("deepgrow_3d")
    assert changed.args == ["deepgrow_3d"]

    image = viewer.document.image
    tool = viewer.tools["clicks"]
    viewer.select_tool("clicks")
    target = (60, 50, 15)
    _on_slice(viewer, target[2])
    axial = viewer.slice_views["axial"]
    with qtbot.waitSignal(tool.updated, timeout=90_000):
        qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=voxel_pos(axial, image, target))
    assert isinstance(tool._refiner, WorkerRefiner)
    assert tool._refiner.bundle == str(installed.path)
    assert tool.clicks[0].index == target
    empty = np.zeros(image.array.shape, bool)
    region, values = refine_with_model(image, empty, tool.clicks, str(installed.path))
    expected = empty.copy()
    expected[region] = values
    got = viewer.document.labels.array == viewer.state.active_label
    assert expected.any() and np.array_equal(got, expected)

    controls.select_click_model(None)  # back to the model-free refiner
    assert tool.refiner_factory is None and not tool.clicks


def test_default_save_path_beside_the_image(tmp_path):
    from types import SimpleNamespace

    doc = SimpleNamespace(labels_path=None, path=tmp_path / "ct.nii.gz")
    assert label_actions.default_labels_path(doc) == tmp_path / "ct_labels.nii.gz"
    doc.path = tmp_path / "series"  # a DICOM folder
    (tmp_path / "series").mkdir()
    assert label_actions.default_labels_path(doc) == tmp_path / "series_labels.nii.gz"
    doc.labels_path = tmp_path / "mine.nii"  # a loaded label file is saved back in place
    assert label_actions.default_labels_path(doc) == tmp_path / "mine.nii"
