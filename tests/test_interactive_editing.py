"""Brush, eraser, hole filling, islands and label management, all undoable, on the real CT."""

from __future__ import annotations

import numpy as np
import pytest

from ctseg_gui.core.history import LabelEditor
from ctseg_gui.core.labels import LabelMap, LabelTable
from ctseg_gui.interactive import editing
from ctseg_gui.io import read_image, read_label_map


@pytest.fixture
def ct(small_ct):
    return read_image(small_ct)


@pytest.fixture
def editor(ct):
    return LabelEditor(LabelMap.empty(ct, LabelTable.from_names(["spleen", "liver"])))


def test_disc_radius_is_in_mm_and_stays_in_one_slice(ct, editor):
    centre = (60, 50, 15)
    assert editing.paint(editor, 1, centre, radius_mm=9.0, plane_axis=0)
    mask = editor.labels.array == 1
    assert set(np.nonzero(mask)[0]) == {15}
    # 3 mm pixels: a 9 mm radius disc is the lattice points within 3 voxels.
    expected = sum(1 for a in range(-3, 4) for b in range(-3, 4) if a * a + b * b <= 9)
    assert mask.sum() == expected
    assert editor.undo() and not (editor.labels.array == 1).any()


def test_sphere_and_eraser_only_touch_the_active_structure(ct, editor):
    editor.labels.array[15, 50, 60:64] = 2
    assert editing.paint(editor, 1, (60, 50, 15), radius_mm=6.0, plane_axis=None, overwrite=False)
    assert (editor.labels.array[15, 50, 60:64] == 2).all()  # overwrite=False spares liver
    assert len(set(np.nonzero(editor.labels.array == 1)[0])) == 5  # 5 slices: a sphere
    before = editor.labels.array.copy()
    assert editing.paint(editor, 1, (60, 50, 15), radius_mm=30.0, plane_axis=None, erase=True)
    assert not (editor.labels.array == 1).any()
    assert (editor.labels.array[15, 50, 60:64] == 2).all()
    assert editor.undo() and np.array_equal(editor.labels.array, before)


def test_paint_limited_to_hu_range(ct, editor):
    centre = (61, 50, 15)
    assert editing.paint(editor, 1, centre, radius_mm=40.0, hu_range=(-200.0, 200.0))
    hu = ct.array[editor.labels.array == 1]
    assert hu.min() >= -200 and hu.max() <= 200
    region, disc = editing.brush_mask(centre, 40.0, ct.spacing, ct.array.shape, 0)
    outside = disc & ((ct.array[region] < -200) | (ct.array[region] > 200))
    assert outside.any()  # the range really excluded something (air or bone) under the brush


def test_fill_holes_and_islands(ct, editor):
    array = editor.labels.array
    array[10:20, 40:60, 40:60] = 1
    array[14:16, 48:52, 48:52] = 0  # an enclosed hole
    array[15, 49, 49] = 2  # another structure inside the hole stays
    array[5, 5:7, 5:7] = 1  # a small island
    editor2 = LabelEditor(editor.labels)
    assert editing.fill_holes(editor2, 1)
    assert (array[14:16, 48:52, 48:52] == 1).sum() == 2 * 16 - 1 and array[15, 49, 49] == 2
    assert editing.remove_small_islands(editor2, 1, min_ml=0.5)
    assert not (array[5] == 1).any() and (array[10:20, 40:60, 40:60] == 1).any()
    array[5, 5, 5] = 1
    assert editing.keep_largest_island(editor2, 1)
    assert array[5, 5, 5] == 0
    assert editor2.undo() and array[5, 5, 5] == 1


def test_label_management(ct, editor, abdomen_ct, reference_labels):
    table = editor.labels.table
    value = editing.add_label(table, "kidney", (1, 2, 3))
    assert value == 3 and table[3].name == "kidney" and table[3].color == (1, 2, 3)
    editing.rename_label(table, 3, "kidney_left")
    editing.recolour_label(table, 3, (10, 20, 30))
    assert table[3].name == "kidney_left" and table[3].color == (10, 20, 30)
    with pytest.raises(ValueError):
        editing.recolour_label(table, 3, (300, 0, 0))
    editor.labels.array[10:12, 40:42, 40:42] = 3
    editor.labels.array[10:12, 50:52, 50:52] = 1
    assert editing.merge_labels(editor, 3, 1)
    assert 3 not in table and (editor.labels.array == 1).sum() == 16
    assert editor.undo() and (editor.labels.array == 3).sum() == 8
    assert editing.delete_label(editor, 2) is False and 2 not in table


def test_real_reference_structure_cleanup_is_exact_undo(abdomen_ct, reference_labels):
    image = read_image(abdomen_ct)
    labels = read_label_map(reference_labels, image)
    editor = LabelEditor(labels)
    before = labels.array.copy()
    editing.keep_largest_island(editor, 5)
    editing.fill_holes(editor, 1, plane_axis=0)
    for _ in range(2):
        editor.undo()
    assert np.array_equal(labels.array, before)
