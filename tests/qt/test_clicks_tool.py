"""Click refinement tool in the slice views: coordinates (RAS and LPS files), markers, undo."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from mouse import voxel_pos
from PySide6.QtCore import Qt

from ctseg_gui.interactive.geodesic import GeodesicRefiner
from ctseg_gui.io import write_image


class RecordingRefiner:
    """The real geodesic refiner, recording the clicks it is given (optionally held back once)."""

    def __init__(self, image, hold: threading.Event | None = None) -> None:
        self.inner = GeodesicRefiner(image)
        self.calls: list[list] = []
        self.hold = hold

    def refine(self, mask, clicks):
        self.calls.append(list(clicks))
        if self.hold is not None:
            hold, self.hold = self.hold, None
            assert hold.wait(30)
        return self.inner.refine(mask, clicks)


def _tool(window, refiners: list, hold=None):
    from ctseg_gui.qt.click_tool import QtClickTool

    def factory(image):
        refiners.append(RecordingRefiner(image, hold))
        return refiners[-1]

    tool = QtClickTool(
        window.document, window.state, lambda: list(window.slice_views.values()), factory
    )
    window.set_tool(tool)
    return tool


def _click_voxel(qtbot, view, image, ijk, button=Qt.MouseButton.LeftButton, mods=None):
    mods = mods or Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(view, button, mods, voxel_pos(view, image, ijk))


def _farthest_in_mask(labels, value, ijk):
    j, i = np.nonzero(labels[ijk[2]] == value)
    far = int(np.argmax((i - ijk[0]) ** 2 + (j - ijk[1]) ** 2))
    return (int(i[far]), int(j[far]), ijk[2])


def _move_to_slice(window, image, k):
    cursor = image.world_to_index(window.state.cursor)
    window.state.cursor = image.index_to_world((cursor[0], cursor[1], k))
    window.render_all()


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_clicks_reach_the_model_at_the_clicked_voxel(
    qtbot, viewer, open_and_wait, abdomen_ct, tmp_path, lps_twin, orientation
):
    from ctseg_gui.io import read_image

    path = abdomen_ct
    if orientation == "LPS":
        path = tmp_path / "lps.mha"
        write_image(lps_twin(read_image(abdomen_ct)), path)
    open_and_wait(viewer, path)
    image = viewer.document.image
    assert image.orientation_code == orientation
    refiners: list = []
    tool = _tool(viewer, refiners)
    axial = viewer.slice_views["axial"]
    # The spleen of this patient (left, posterior); in the LPS twin i and j run the other way.
    ijk = (36, 66, 80) if orientation == "RAS" else (121 - 36, 100 - 66, 80)
    _move_to_slice(viewer, image, ijk[2])
    cursor_before = viewer.state.cursor
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        _click_voxel(qtbot, axial, image, ijk)
    clicks = refiners[0].calls[-1]
    assert clicks[-1].index == ijk and clicks[-1].positive
    assert viewer.state.cursor == cursor_before  # the tool took the click, not the crosshair
    labels = viewer.document.labels.array
    value = viewer.state.active_label
    assert labels[ijk[2], ijk[1], ijk[0]] == value
    assert (labels == value).sum() > 500  # an organ-sized region, not a dot
    assert tool.visible_markers(axial) == [clicks[-1]]

    # Right click and Shift + left click are negative, at their own voxels: the right click goes
    # to the voxel of the new region on this slice farthest from the positive click.
    before = labels.copy()
    target = _farthest_in_mask(labels, value, ijk)
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        _click_voxel(qtbot, axial, image, target, Qt.MouseButton.RightButton)
    assert not refiners[0].calls[-1][-1].positive
    assert refiners[0].calls[-1][-1].index == target
    assert (labels == value).sum() < (before == value).sum()
    assert labels[target[2], target[1], target[0]] == 0
    neighbour = (ijk[0] + 2, ijk[1], ijk[2])
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        _click_voxel(qtbot, axial, image, neighbour, mods=Qt.KeyboardModifier.ShiftModifier)
    assert refiners[0].calls[-1][-1].index == neighbour
    assert not refiners[0].calls[-1][-1].positive


def test_undo_redo_restore_exact_voxels(qtbot, viewer, open_and_wait, abdomen_ct):
    open_and_wait(viewer, abdomen_ct)
    image = viewer.document.image
    tool = _tool(viewer, [])
    axial = viewer.slice_views["axial"]
    _move_to_slice(viewer, image, 80)
    labels = viewer.document.labels
    empty = labels.array.copy()
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        _click_voxel(qtbot, axial, image, (36, 66, 80))
    first = labels.array.copy()
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        target = _farthest_in_mask(labels.array, viewer.state.active_label, (36, 66, 80))
        _click_voxel(qtbot, axial, image, target, Qt.MouseButton.RightButton)
    second = labels.array.copy()
    assert not np.array_equal(first, second) and not np.array_equal(first, empty)
    # The Edit menu's actions carry the shortcuts; triggering them is what the keys do.
    assert viewer.undo_action.shortcut().toString() == "Ctrl+Z"
    assert viewer.redo_action.shortcut().toString() == "Ctrl+Shift+Z"
    assert viewer.undo_action.isEnabled()
    viewer.undo_action.trigger()
    assert np.array_equal(labels.array, first)
    viewer.undo()
    assert np.array_equal(labels.array, empty)
    viewer.redo_action.trigger()
    assert np.array_equal(labels.array, first)
    viewer.redo()
    assert np.array_equal(labels.array, second)


def test_newer_click_supersedes_running_update(qtbot, viewer, open_and_wait, abdomen_ct):
    open_and_wait(viewer, abdomen_ct)
    image = viewer.document.image
    hold = threading.Event()
    refiners: list = []
    tool = _tool(viewer, refiners, hold)
    axial = viewer.slice_views["axial"]
    _move_to_slice(viewer, image, 80)
    editor = viewer.document.editor
    _click_voxel(qtbot, axial, image, (36, 66, 80))
    qtbot.waitUntil(lambda: len(refiners) == 1 and len(refiners[0].calls) == 1)
    assert tool.busy  # the first update is held back; the GUI still takes clicks
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        _click_voxel(qtbot, axial, image, (45, 60, 80))
        hold.set()
    qtbot.wait(200)  # the held first update has finished by now and must have been dropped
    assert not tool.busy
    # Both clicks applied once, by the newer update, as one undo step.
    assert [len(c) for c in refiners[0].calls] == [1, 1, 2]
    assert editor.undo() and not editor.can_undo


def test_main_window_clicks_tool_with_model_free_default(qtbot, viewer, open_and_wait, abdomen_ct):
    open_and_wait(viewer, abdomen_ct)
    image = viewer.document.image
    viewer.select_tool("clicks")
    tool = viewer.tools["clicks"]
    assert any(a.data() == "clicks" and a.isChecked() for a in viewer.tool_actions.actions())
    _move_to_slice(viewer, image, 80)
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        _click_voxel(qtbot, viewer.slice_views["axial"], image, (36, 66, 80))
    assert viewer.document.labels.array[80, 66, 36] == viewer.state.active_label
    assert viewer.undo_action.isEnabled()
    viewer.state.active_label = 2  # another structure: a fresh set of clicks
    assert tool.clicks == []
