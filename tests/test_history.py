"""Undo/redo of label edits on the real reference label map."""

import numpy as np
import pytest

from ctseg_gui.core.history import LabelEditor, changed_region
from ctseg_gui.core.labels import LabelMap
from ctseg_gui.io import read_image, read_label_map


@pytest.fixture
def editor(abdomen_ct, reference_labels):
    image = read_image(abdomen_ct)
    return LabelEditor(read_label_map(reference_labels, image))


def test_undo_redo_restore_exact_voxels(editor):
    original = editor.labels.array.copy()
    regions = []
    editor.changed.connect(regions.append)
    mask = np.zeros((10, 10, 10), bool)
    mask[2:8, 2:8, 2:8] = True
    region = (slice(50, 60), slice(40, 50), slice(60, 70))
    assert editor.paint(mask, 7, "brush", region=region)
    painted = editor.labels.array.copy()
    assert (painted[50:60, 40:50, 60:70][mask] == 7).all()
    # The step (and the redraw) covers just the voxels that changed.
    assert regions[-1] == changed_region(original, painted)
    editor.undo()
    np.testing.assert_array_equal(editor.labels.array, original)
    editor.redo()
    np.testing.assert_array_equal(editor.labels.array, painted)


def test_step_stores_only_changed_box(editor):
    before = editor.history_bytes
    mask = np.zeros(editor.labels.array.shape, bool)
    mask[60, 50, 40:43] = True
    editor.paint(mask, 99, "dot")
    assert editor.history_bytes - before <= 2 * 3 * editor.labels.array.itemsize


def test_sixty_steps_undo_back_to_start(editor):
    original = editor.labels.array.copy()
    for step in range(60):
        mask = np.zeros(editor.labels.array.shape, bool)
        mask[step % 100, 10:20, 10:20] = True
        editor.paint(mask, 200 - step, f"step {step}")
    undone = 0
    while editor.undo():
        undone += 1
    assert undone == 60
    np.testing.assert_array_equal(editor.labels.array, original)
    assert not editor.modified


def test_erase_only_active_structure(editor):
    spleen_before = np.count_nonzero(editor.labels.array == 1)
    liver_before = np.count_nonzero(editor.labels.array == 5)
    everything = np.ones(editor.labels.array.shape, bool)
    editor.paint(everything, 0, "erase spleen", only_value=1)
    assert np.count_nonzero(editor.labels.array == 1) == 0 and spleen_before > 0
    assert np.count_nonzero(editor.labels.array == 5) == liver_before


def test_no_change_records_no_step(editor):
    assert not editor.paint(np.zeros(editor.labels.array.shape, bool), 3, "nothing")
    assert not editor.can_undo


def test_modified_tracks_saved_state(editor):
    assert not editor.modified
    mask = np.zeros(editor.labels.array.shape, bool)
    mask[0, 0, 0] = True
    editor.paint(mask, 42, "dot")
    assert editor.modified
    editor.mark_saved()
    assert not editor.modified
    editor.undo()
    assert editor.modified


def test_changed_region_bbox():
    a = np.zeros((5, 6, 7), np.uint8)
    b = a.copy()
    b[1, 2, 3] = 1
    b[3, 4, 5] = 1
    assert changed_region(a, b) == (slice(1, 4), slice(2, 5), slice(3, 6))
    assert changed_region(a, a) is None


def test_model_result_replaces_whole_map(abdomen_ct):
    image = read_image(abdomen_ct)
    editor = LabelEditor(LabelMap.empty(image))
    result = np.zeros(image.array.shape, np.uint16)
    result[10:20, 10:20, 10:20] = 3
    editor.replace_all(result, "model")
    np.testing.assert_array_equal(editor.labels.array, result)
    editor.undo()
    assert not editor.labels.array.any()
