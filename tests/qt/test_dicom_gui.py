"""File > Export > DICOM SEG / RTSTRUCT and File > Open DICOM SEG in the main window."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_fixtures import organ_labels, series_with_uids
from PySide6.QtWidgets import QFileDialog

pytest.importorskip("highdicom")
pytest.importorskip("rt_utils")


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory, dicom_series):
    return series_with_uids(dicom_series, tmp_path_factory.mktemp("gui") / "ct")


@pytest.fixture
def opened(viewer, open_and_wait, series_dir):
    window = open_and_wait(viewer, series_dir)
    organs = organ_labels(window.document.image)
    assert window.document.apply_result(organs, "model result")
    return window, organs


def _menu_texts(menu):
    return [a.text() for a in menu.actions()]


def test_menu_entries_follow_the_image_source(viewer, open_and_wait, small_ct, series_dir):
    window = viewer
    assert "Open DICOM SEG…" in _menu_texts(window.file_menu)
    assert _menu_texts(window.export_menu) == ["DICOM SEG…", "DICOM RTSTRUCT…"]
    assert not window.export_seg_action.isEnabled()  # nothing open
    open_and_wait(window, small_ct)
    assert not window.export_seg_action.isEnabled()  # NIfTI: no series to reference
    assert not window.open_seg_action.isEnabled()
    open_and_wait(window, series_dir)
    for action in (window.open_seg_action, window.export_seg_action, window.export_rtstruct_action):
        assert action.isEnabled()


def test_export_seg_then_open_it_over_the_series(qtbot, opened, tmp_path, monkeypatch):
    window, organs = opened
    target = tmp_path / "gui.seg.dcm"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(window.dicom_tasks.finished, timeout=120_000):
        window.export_seg_action.trigger()
    assert pydicom.dcmread(target, stop_before_pixels=True).Modality == "SEG"
    # wipe the labels, then read the SEG back through the menu
    window.document.editor.replace_all(np.zeros_like(organs.array), "clear")
    window.document.editor.mark_saved()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(window.dicom_tasks.finished, timeout=120_000):
        window.open_seg_action.trigger()
    labels = window.document.labels
    np.testing.assert_array_equal(labels.array, organs.array)
    assert labels.image is window.document.image
    value = organs.present_values()[0]
    assert labels.table[value].name == organs.table[value].name
    assert labels.provenance is not None and labels.provenance.input["series_uid"]
    assert not window.errors


def test_export_rtstruct_from_the_menu(qtbot, opened, tmp_path, monkeypatch):
    window, organs = opened
    target = tmp_path / "gui.rt.dcm"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(window.dicom_tasks.finished, timeout=120_000):
        window.export_rtstruct_action.trigger()
    dataset = pydicom.dcmread(target)
    names = [roi.ROIName for roi in dataset.StructureSetROISequence]
    assert names == [organs.table[v].name for v in organs.present_values()]
    assert not window.errors


def test_export_errors_are_reported_in_one_line(
    qtbot, viewer, open_and_wait, dicom_series, tmp_path, monkeypatch
):
    window = open_and_wait(viewer, dicom_series)  # anonymised: no UIDs to reference
    window.document.apply_result(organ_labels(window.document.image), "model result")
    target = tmp_path / "x.dcm"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(window.dicom_tasks.failed, timeout=120_000):
        window.export_seg_action.trigger()
    assert not target.exists()
    assert len(window.errors) == 1 and "anonymised" in window.errors[0]
