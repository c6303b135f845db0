"""Widget tests of the viewer: linked crosshair, scrolling, presets, labels, layouts, loading."""

from __future__ import annotations

import numpy as np
import pytest
from mouse import voxel_pos
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from ctseg_gui.core.viewer_state import WINDOW_PRESETS


def _wheel(view, steps: int) -> None:
    centre = QPointF(view.width() / 2, view.height() / 2)
    event = QWheelEvent(
        centre,
        view.mapToGlobal(centre),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view, event)


def test_click_moves_crosshair_in_all_views(qtbot, viewer, open_and_wait, abdomen_ct):
    open_and_wait(viewer, abdomen_ct)
    image = viewer.document.image
    axial, coronal, sagittal = (viewer.slice_views[n] for n in ("axial", "coronal", "sagittal"))
    k = int(round(image.world_to_index(viewer.state.cursor)[2]))
    target = image.index_to_world((30, 70, k))  # a voxel on the patient's left, posterior
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=voxel_pos(axial, image, (30, 70, k)))
    cursor = np.asarray(viewer.state.cursor)
    ijk = image.world_to_index(cursor)
    assert np.abs(ijk[:2] - (30, 70)).max() <= 0.6  # within the clicked voxel
    assert ijk[2] == pytest.approx(image.world_to_index(target)[2], abs=0.5)  # same slice
    # The other views now show the planes through the clicked point.
    assert coronal.slice_number == coronal.geometry.slice_number(
        coronal.geometry.to_plane(cursor)[2]
    )
    assert sagittal.slice_number == sagittal.geometry.slice_number(
        sagittal.geometry.to_plane(cursor)[2]
    )
    i_expected = image.size[0] - 1 - 30  # RAS file: index i runs to the patient's right
    assert sagittal.slice_number == i_expected
    # Dragging keeps moving it.
    qtbot.mousePress(coronal, Qt.MouseButton.LeftButton, pos=QPoint(50, 60))
    before = viewer.state.cursor
    qtbot.mouseMove(coronal, QPoint(90, 100))
    qtbot.mouseRelease(coronal, Qt.MouseButton.LeftButton, pos=QPoint(90, 100))
    assert viewer.state.cursor != before
    assert axial.slice_number == axial.geometry.slice_number(
        axial.geometry.to_plane(viewer.state.cursor)[2]
    )


def test_wheel_and_page_keys_scroll_one_slice(qtbot, viewer, open_and_wait, small_ct):
    open_and_wait(viewer, small_ct)
    axial = viewer.slice_views["axial"]
    start = axial.slice_number
    z0 = viewer.state.cursor[2]
    _wheel(axial, 1)
    assert axial.slice_number == start + 1
    assert viewer.state.cursor[2] == pytest.approx(z0 + viewer.document.image.spacing[2])
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_PageDown)
    qtbot.keyClick(axial, Qt.Key.Key_PageDown)
    assert axial.slice_number == start - 1
    for _ in range(3):
        _wheel(axial, 20)  # past the end: stays on the last slice
    assert axial.slice_number == axial.slice_count - 1
    viewer.render_all()
    assert "Slice 30 / 30" in axial.scene.corners["top_left"].GetInput()


def test_presets_and_numeric_window(qtbot, viewer, open_and_wait, small_ct):
    open_and_wait(viewer, small_ct)
    axial = viewer.slice_views["axial"]
    viewer.preset_box.textActivated.emit("Lung")
    assert viewer.state.window == WINDOW_PRESETS["Lung"]
    assert axial.scene._window == (1500, -600)
    assert viewer.width_box.value() == 1500 and viewer.level_box.value() == -600
    viewer.width_box.setValue(250)
    assert viewer.state.window == (250.0, -600.0)
    assert viewer.preset_box.currentText() == "Custom"
    bone = viewer.preset_actions["Bone"]
    assert bone.shortcut().toString() == "3"
    bone.trigger()
    assert viewer.state.window == WINDOW_PRESETS["Bone"]
    # Ctrl + drag adjusts interactively: wider to the right, lower level downwards.
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     QPoint(100, 100))  # fmt: skip
    qtbot.mouseMove(axial, QPoint(160, 140))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=QPoint(160, 140))
    width, level = viewer.state.window
    assert width > 1800 and level < 400


def test_label_visibility_from_panel(qtbot, viewer, open_and_wait, abdomen_ct, reference_labels):
    open_and_wait(viewer, abdomen_ct, reference_labels)
    labels = viewer.document.labels
    assert {1, 2, 3, 5} <= set(labels.present_values())
    k, j, i = (int(np.median(a)) for a in np.nonzero(labels.array == 1))
    viewer.state.cursor = viewer.document.image.index_to_world((i, j, k))
    axial = viewer.slice_views["axial"]
    model = viewer.label_panel.model
    row = [model.value_at(r) for r in range(model.rowCount())].index(1)
    spleen_ml = float(model.data(model.index(row, 4)))
    expected_ml = np.count_nonzero(labels.array == 1) * np.prod(labels.image.spacing) / 1000
    assert spleen_ml == pytest.approx(expected_ml, abs=0.05)
    # Sorting by volume sorts numbers (largest first), not text.
    viewer.label_panel.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)
    proxy = viewer.label_panel.proxy
    first = model.value_at(proxy.mapToSource(proxy.index(0, 0)).row())
    assert first == max(labels.voxel_counts().items(), key=lambda item: item[1])[0]

    def spleen_pixels() -> int:
        alpha = axial.scene.overlay_alpha()
        spleen = axial.current_labels().pixels == 1
        return 0 if alpha is None else int(np.count_nonzero(spleen & (alpha > 0)))

    assert spleen_pixels() > 20
    model.setData(
        model.index(row, 0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole
    )
    assert not labels.table[1].visible
    assert spleen_pixels() == 0
    # The filter box narrows 59 rows to the matching ones without building widgets per label.
    viewer.label_panel.filter_box.setText("label 5")
    shown = viewer.label_panel.proxy.rowCount()
    assert 1 <= shown < model.rowCount()
    viewer.label_panel.show_all.click()  # shows only the filtered rows
    assert not labels.table[1].visible
    viewer.label_panel.filter_box.setText("")
    viewer.label_panel.show_all.click()
    assert labels.table[1].visible and spleen_pixels() > 20
    viewer.state.labels_visible = False
    assert not axial.scene.has_overlay and axial.scene.overlay_alpha() is None


def test_double_click_maximises_and_restores(qtbot, viewer, open_and_wait, small_ct):
    open_and_wait(viewer, small_ct)
    coronal = viewer.slice_views["coronal"]
    qtbot.mouseDClick(coronal, Qt.MouseButton.LeftButton, pos=QPoint(40, 40))
    assert viewer.state.layout == "single" and viewer.grid.visible_views() == ["coronal"]
    qtbot.mouseDClick(coronal, Qt.MouseButton.LeftButton, pos=QPoint(40, 40))
    assert viewer.state.layout == "2x2" and len(viewer.grid.visible_views()) == 4
    viewer.layout_actions["1+3"].trigger()
    assert viewer.state.layout == "1+3"
    qtbot.waitUntil(
        lambda: viewer.slice_views["axial"].width() > 2 * viewer.slice_views["sagittal"].width()
    )


def test_zoom_pan_and_reset(qtbot, viewer, open_and_wait, small_ct):
    open_and_wait(viewer, small_ct)
    axial = viewer.slice_views["axial"]
    before = axial.scene.mm_per_pixel
    qtbot.mousePress(axial, Qt.MouseButton.RightButton, pos=QPoint(100, 200))
    qtbot.mouseMove(axial, QPoint(100, 100))
    qtbot.mouseRelease(axial, Qt.MouseButton.RightButton, pos=QPoint(100, 100))
    axial.render_now()
    assert viewer.state.camera("axial").zoom > 1.5
    assert axial.scene.mm_per_pixel < before / 1.5
    viewer.reset_action.trigger()
    axial.render_now()
    assert axial.scene.mm_per_pixel == pytest.approx(before)
    # Ctrl + wheel zooms towards the mouse: the point under it stays under it.
    under = axial.scene.display_to_plane(150, 120)
    axial.zoom_at(150, 120, 2.0)
    axial.render_now()
    assert axial.scene.mm_per_pixel == pytest.approx(before / 2)
    assert axial.scene.display_to_plane(150, 120) == pytest.approx(under)


def test_roi_statistics_and_ruler(qtbot, viewer, open_and_wait, small_ct):
    open_and_wait(viewer, small_ct)
    axial = viewer.slice_views["axial"]
    viewer.select_tool("rect")
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=QPoint(150, 150))
    qtbot.mouseMove(axial, QPoint(220, 200))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=QPoint(220, 200))
    item = viewer.measurements[-1]
    image = axial.current_slice()
    u0, v0 = axial.scene.display_to_plane(150, 150)
    u1, v1 = axial.scene.display_to_plane(220, 200)
    cols = image.origin[0] + image.spacing[0] * np.arange(image.pixels.shape[1])
    rows = image.origin[1] + image.spacing[1] * np.arange(image.pixels.shape[0])
    inside = image.pixels[np.ix_((rows >= min(v0, v1)) & (rows <= max(v0, v1)),
                                 (cols >= min(u0, u1)) & (cols <= max(u0, u1)))]  # fmt: skip
    assert item.stats.count == inside.size > 0
    assert item.stats.mean == pytest.approx(inside.mean())
    assert item.stats.maximum == inside.max()
    assert item.stats.area_mm2 == pytest.approx(inside.size * image.spacing[0] * image.spacing[1])
    assert "mean" in item.text
    viewer.select_tool("ruler")
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(axial, QPoint(200, 100))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=QPoint(200, 100))
    ruler = viewer.measurements[-1]
    assert ruler.text == f"{100 * axial.scene.mm_per_pixel:.1f} mm"
    cursor = viewer.state.cursor
    viewer.select_tool("navigate")
    axial.scroll(1)
    assert not ruler.actors[0].GetVisibility()  # lives on its own slice
    viewer.state.cursor = cursor
    assert ruler.actors[0].GetVisibility()
    viewer.clear_measurements()
    assert not viewer.measurements


def test_stale_load_is_dropped_and_errors_name_the_file(
    qtbot, viewer, abdomen_ct, small_ct, tmp_path
):
    loaded = []
    viewer.loader.image_loaded.connect(lambda volume, path: loaded.append(path))
    viewer.open_path(str(abdomen_ct))
    viewer.open_path(str(small_ct))  # supersedes the first request
    qtbot.waitUntil(lambda: not viewer.loader.loading, timeout=60_000)
    qtbot.wait(200)  # let a late first result arrive, if it were not dropped
    assert loaded == [str(small_ct)]
    assert viewer.document.image.size[2] == 30
    viewer.open_path(str(abdomen_ct))
    viewer.loader_cancel()
    qtbot.wait(1500)
    assert viewer.document.image.size[2] == 30 and loaded == [str(small_ct)]
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file at all")
    with qtbot.waitSignal(viewer.loader.failed, timeout=30_000):
        viewer.open_path(str(broken))
    assert "broken.nii.gz" in viewer.errors[-1]
    with qtbot.waitSignal(viewer.loader.failed, timeout=30_000):
        viewer.open_labels(str(tmp_path / "missing.nii.gz"))
    assert "missing.nii.gz" in viewer.errors[-1]


def test_folder_with_two_series_offers_a_choice(qtbot, viewer, dicom_copy):
    import pydicom

    second = pydicom.uid.generate_uid()
    for path in sorted(dicom_copy.iterdir())[:8]:
        header = pydicom.dcmread(path)
        header.SeriesInstanceUID = second
        header.SeriesNumber = 99
        header.save_as(path)
    found = []
    viewer.loader.series_found.connect(lambda series, folder: found.append(series))
    viewer.interactive = False  # headless: takes the largest series after offering the choice
    with qtbot.waitSignal(viewer.loader.image_loaded, timeout=60_000):
        viewer.open_path(str(dicom_copy))
    assert len(found[0]) == 2
    assert viewer.document.image.size[2] == 12
    from ctseg_gui.qt.dialogs import QtSeriesPicker

    picker = QtSeriesPicker(found[0], str(dicom_copy))
    qtbot.addWidget(picker)
    picker.table.selectRow(1)
    assert picker.selected_uid() == found[0][1].uid


def test_recent_files_and_corner_text(qtbot, viewer, open_and_wait, dicom_series):
    viewer.interactive = True  # records the recent file
    open_and_wait(viewer, dicom_series)
    viewer.interactive = False
    from ctseg_gui.qt import recent

    assert recent.load_recent()[0] == str(dicom_series.resolve())
    assert [a.text() for a in viewer.recent_menu.actions()] == [str(dicom_series.resolve())]
    corner = viewer.slice_views["axial"].scene.corners["top_right"].GetInput()
    meta = viewer.document.image.metadata
    assert meta["format"] == "DICOM" and str(meta["series_description"]) in corner


def test_model_result_lands_as_undoable_labels(qtbot, viewer, open_and_wait, small_ct):
    if viewer.model_panel is None:
        pytest.skip("the model panel is not part of this build")
    from ctseg_gui.core.labels import LabelMap, LabelTable

    open_and_wait(viewer, small_ct)
    image = viewer.document.image
    result = np.zeros(image.array.shape, np.uint8)
    result[image.array > 300] = 4  # bone-like voxels
    table = LabelTable.from_names({4: "bone"})
    viewer.model_panel.result_ready.emit(LabelMap(result, image, table))
    assert np.array_equal(viewer.document.labels.array, result)
    assert viewer.document.labels.table[4].name == "bone"
    assert viewer.undo_action.isEnabled() and viewer.document.modified
    names = [viewer.label_panel.model.data(viewer.label_panel.model.index(r, 3))
             for r in range(viewer.label_panel.model.rowCount())]  # fmt: skip
    assert names == ["bone"]
    viewer.undo_action.trigger()
    assert not viewer.document.labels.array.any() and viewer.redo_action.isEnabled()


def test_volume_rendering_toggle(qtbot, viewer, open_and_wait, small_ct):
    from ctseg_gui.qt.screenshot import vtk_view_image

    open_and_wait(viewer, small_ct)
    view = viewer.view3d
    view.render_now()
    before = vtk_view_image(view).astype(int)
    view.set_volume_rendering(True)
    after = vtk_view_image(view).astype(int)
    assert np.abs(after - before).max(-1).mean() > 2  # the CT now shows in 3D
    view.set_volume_rendering(False)
    assert np.abs(vtk_view_image(view).astype(int) - before).max() <= 2


def test_status_bar_shows_voxel_world_and_hu(qtbot, viewer, open_and_wait, abdomen_ct):
    open_and_wait(viewer, abdomen_ct)
    axial = viewer.slice_views["axial"]
    image = viewer.document.image
    k = int(round(image.world_to_index(viewer.state.cursor)[2]))
    world = image.index_to_world((61, 40, k))
    qtbot.mouseMove(axial, voxel_pos(axial, image, (61, 40, k)))
    qtbot.waitUntil(lambda: "HU" in viewer._hover.text())
    text = viewer._hover.text()
    assert f"voxel (61, 40, {k})" in text
    assert f"{float(image.array[k, 40, 61]):.0f} HU" in text
    shown = [float(v) for v in text.split("LPS (")[1].split(")")[0].split(",")]
    assert np.abs(np.array(shown) - world).max() < 1.5  # within half a 3 mm voxel


def test_drop_a_file_opens_it(qtbot, viewer, small_ct):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(small_ct))])
    event = QDropEvent(
        QPointF(200, 200), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    with qtbot.waitSignal(viewer.loader.image_loaded, timeout=60_000):
        viewer.dropEvent(event)
    assert viewer.document.path == small_ct


def test_help_lists_the_shortcuts(qtbot, viewer):
    from ctseg_gui.qt.dialogs import SHORTCUTS, QtHelpDialog

    dialog = QtHelpDialog(viewer)
    qtbot.addWidget(dialog)
    keys = [key for key, _ in SHORTCUTS]
    assert "F1" in keys and "1 - 6" in keys
    # Every single-key shortcut in the help really is bound to an action of the window.
    bound = {a.shortcut().toString() for a in viewer.actions() if not a.shortcut().isEmpty()}
    for key in ("R", "W", "N", "M", "E", "C", "F5", "F6", "F7", "T", "F1", "Ctrl+L", "Esc"):
        assert key in bound, key
