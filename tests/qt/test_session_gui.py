"""Save a session from the window, close it, reopen it: labels, clicks, a ruler, the view return."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt


@pytest.fixture
def ct_copy(tmp_path, small_ct):
    target = tmp_path / "ct.nii.gz"
    shutil.copy(small_ct, target)
    return target


def _reopen(qtbot, window, path):
    with qtbot.waitSignal(window.loader.image_loaded, timeout=60_000):
        window.open_path(str(path))
    qtbot.waitUntil(lambda: window.session_path is not None, timeout=30_000)
    window.render_all()


def test_save_close_and_reopen_a_session(
    qtbot, viewer, new_window, open_and_wait, ct_copy, tmp_path
):
    from ctseg_gui.interactive import editing
    from ctseg_gui.interactive.clicks import Click
    from ctseg_gui.qt.session_actions import save_session

    open_and_wait(viewer, ct_copy)
    image = viewer.document.image
    editing.paint(viewer.document.editor, 3, (60, 50, 15), 6.0)
    viewer.document.update_label(3, name="my lesion")
    viewer.state.active_label = 3
    tool = viewer.tools["clicks"]
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        tool.add_click(Click((62, 50, 15), True))
    cursor = tuple(image.index_to_world((40, 45, 15)))
    viewer.state.cursor = cursor
    viewer.state.set_window(1500, -600)
    viewer.render_all()
    axial = viewer.slice_views["axial"]
    viewer.select_tool("ruler")
    qtbot.mousePress(axial, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(axial, QPoint(200, 140))
    qtbot.mouseRelease(axial, Qt.MouseButton.LeftButton, pos=QPoint(200, 140))
    viewer.select_tool("navigate")
    ruler = viewer.measurements[-1]
    labels = viewer.document.labels.array.copy()
    assert (labels == 3).sum() > 0

    path = tmp_path / "work.ctseg"
    assert save_session(viewer, path) and path.is_file()
    assert not viewer.document.modified  # the session holds the edits
    viewer.close()

    window = new_window()
    _reopen(qtbot, window, path)
    assert window.errors == [] and window.warnings == []
    np.testing.assert_array_equal(window.document.labels.array, labels)
    assert window.document.labels.table[3].name == "my lesion"
    assert window.state.cursor == pytest.approx(cursor)
    assert window.state.window == (1500.0, -600.0)
    assert window.state.active_label == 3
    assert window.tools["clicks"].clicks == [Click((62, 50, 15), True)]
    assert window.tools["clicks"].visible_markers(window.slice_views["axial"])
    (restored,) = window.measurements
    assert restored.kind == "ruler" and restored.view is window.slice_views["axial"]
    assert restored.slice_number == ruler.slice_number
    assert restored.start == pytest.approx(ruler.start) and restored.end == pytest.approx(ruler.end)
    assert restored.text == ruler.text and restored.actors[0].GetVisibility()

    # A damaged session: one message naming it, and what is open stays as it is.
    bad = tmp_path / "bad.ctseg"
    bad.write_bytes(path.read_bytes()[:200])
    window.open_path(str(bad))
    assert len(window.errors) == 1 and str(bad) in window.errors[0]
    np.testing.assert_array_equal(window.document.labels.array, labels)
    assert len(window.measurements) == 1
    # A session whose image is gone: the same.
    ct_copy.rename(tmp_path / "elsewhere.nii.gz")
    window.open_path(str(path))
    assert len(window.errors) == 2 and "the session's image is gone" in window.errors[1]
    assert window.document.labels is not None and window.session_path == path


def test_a_changed_image_warns_but_opens(
    qtbot, viewer, new_window, open_and_wait, ct_copy, tmp_path
):
    from ctseg_gui.io import read_image, write_image
    from ctseg_gui.qt.session_actions import save_session

    open_and_wait(viewer, ct_copy)
    path = tmp_path / "s.ctseg"
    assert save_session(viewer, path)
    volume = read_image(ct_copy)
    write_image(volume.with_array(volume.array + 1), ct_copy)  # someone rewrote the CT
    window = new_window()
    _reopen(qtbot, window, path)
    assert window.errors == []
    assert len(window.warnings) == 1 and "image changed" in window.warnings[0]


def test_ctseg_gui_opens_a_session_file(tmp_path, qtbot, viewer, open_and_wait, ct_copy):
    from ctseg_gui.interactive import editing
    from ctseg_gui.qt.session_actions import save_session

    open_and_wait(viewer, ct_copy)
    editing.paint(viewer.document.editor, 2, (60, 50, 15), 6.0)
    path = tmp_path / "s.ctseg"
    assert save_session(viewer, path)
    env_run = [sys.executable, "-m", "ctseg_gui.qt.app"]
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [*env_run, str(path), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert shot.is_file()
    (tmp_path / "new.ctseg").write_bytes(b"PK\x03\x04 damaged")
    result = subprocess.run(
        [*env_run, str(tmp_path / "new.ctseg"), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1 and "new.ctseg: not a ctseg session file" in result.stderr
    assert "Traceback" not in result.stderr


def test_crash_recovery_brings_back_labels_clicks_and_view(
    qtbot, viewer, open_and_wait, ct_copy, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    from ctseg_gui.interactive import editing
    from ctseg_gui.interactive.clicks import Click
    from ctseg_gui.qt.edit_tools import QtAutosave
    from ctseg_gui.qt.main_window import QtMainWindow
    from ctseg_gui.qt.session_actions import session_state

    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    open_and_wait(viewer, ct_copy)
    autosave = QtAutosave(
        viewer.document, interval_s=60.0, check_ms=50, session_state=lambda: session_state(viewer)
    )
    editing.paint(viewer.document.editor, 2, (60, 50, 15), 6.0)
    viewer.state.active_label = 2
    tool = viewer.tools["clicks"]
    with qtbot.waitSignal(tool.updated, timeout=30_000):
        tool.add_click(Click((63, 50, 15), True))
    cursor = tuple(viewer.document.image.index_to_world((30, 35, 14)))
    viewer.state.cursor = cursor
    viewer.state.set_layout("1+3", "sagittal")
    autosave.save_now()  # the timer saves a minute after label edits; the view changed since
    labels = viewer.document.labels.array.copy()

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window = QtMainWindow(interactive=True)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    open_and_wait(window, ct_copy)
    np.testing.assert_array_equal(window.document.labels.array, labels)
    assert window.tools["clicks"].clicks == [Click((63, 50, 15), True)]
    assert window.state.active_label == 2
    assert window.state.cursor == pytest.approx(cursor)
    assert (window.state.layout, window.state.main_view) == ("1+3", "sagittal")
