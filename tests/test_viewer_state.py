"""Viewer logic without a display: evented state, document, slice geometry (LPS/RAS/oblique)."""

from __future__ import annotations

import numpy as np
import pytest

from ctseg_gui.core.document import Document
from ctseg_gui.core.labels import LabelMap, LabelTable
from ctseg_gui.core.viewer_state import WINDOW_PRESETS, ViewerState
from ctseg_gui.core.volume import Volume
from ctseg_gui.io import read_image, read_label_map
from ctseg_gui.render.overlay import OverlayTable
from ctseg_gui.render.slicing import SliceGeometry, label_lut, label_rgba


@pytest.fixture(scope="module")
def ras_ct(abdomen_ct) -> Volume:
    return read_image(abdomen_ct)


def lps_twin(volume: Volume) -> Volume:
    """The same patient stored in LPS order (i to the patient's left, j to posterior)."""
    flipped = np.ascontiguousarray(volume.array[:, ::-1, ::-1])
    i, j, _ = volume.size
    origin = volume.index_to_world((i - 1, j - 1, 0))
    return Volume(flipped, volume.spacing, origin, np.eye(3), dict(volume.metadata))


def test_state_emits_only_real_changes():
    state = ViewerState()
    seen = []
    state.cursor_changed.connect(seen.append)
    state.cursor = (1, 2, 3)
    state.cursor = (1.0, 2.0, 3.0)
    assert seen == [(1.0, 2.0, 3.0)]
    windows = []
    state.window_changed.connect(lambda w, level: windows.append((w, level)))
    for name, value in WINDOW_PRESETS.items():
        state.apply_preset(name)
        assert state.window == value and state.preset_name == name
    assert windows == list(WINDOW_PRESETS.values())[1:]  # soft tissue is the start value
    state.set_window(0, 10)
    assert state.window == (1.0, 10.0) and state.preset_name == ""
    with pytest.raises(KeyError):
        state.apply_preset("abdomen-ish")


def test_state_layout_and_camera():
    state = ViewerState()
    changes = []
    state.layout_changed.connect(lambda layout, main: changes.append((layout, main)))
    state.set_layout("single", "coronal")
    state.set_layout("single", "coronal")
    assert changes == [("single", "coronal")]
    with pytest.raises(ValueError):
        state.set_layout("3x3")
    state.set_camera("axial", zoom=1000)
    assert state.camera("axial").zoom == 50.0
    state.reset_cameras()
    assert state.camera("axial").zoom == 1.0


def test_document_signals_and_model_result(ras_ct):
    document = Document()
    events = []
    document.image_loaded.connect(lambda v: events.append("image"))
    document.labels_replaced.connect(lambda labels: events.append("labels"))
    document.set_image(ras_ct, "ct.nii.gz")
    assert events == ["image", "labels"]
    assert document.labels.array.shape == ras_ct.array.shape and not document.modified
    result = np.zeros(ras_ct.array.shape, np.uint8)
    result[50:60, 40:50, 30:40] = 7
    table = LabelTable.from_names({7: "spleen"})
    assert document.apply_result(LabelMap(result, ras_ct, table))
    assert document.labels.table[7].name == "spleen" and document.modified
    assert document.editor.undo() and not document.labels.array.any()


@pytest.mark.parametrize("view", ["axial", "coronal", "sagittal"])
def test_slices_are_the_voxels_in_ras_and_lps(ras_ct, view):
    lps = lps_twin(ras_ct)
    ijk = (40, 30, 70)
    world = ras_ct.index_to_world(ijk)
    expected = ras_ct.array[ijk[2], ijk[1], ijk[0]]
    pictures = []
    for volume in (ras_ct, lps):
        geometry = SliceGeometry(volume, view)
        assert geometry.aligned
        u, v, w = geometry.to_plane(world)
        image = geometry.extract(volume.array, w)
        col = round((u - image.origin[0]) / image.spacing[0])
        row = round((v - image.origin[1]) / image.spacing[1])
        assert image.pixels[row, col] == expected
        pictures.append(image)
    # Same patient, same picture, whatever the storage order.
    np.testing.assert_array_equal(pictures[0].pixels, pictures[1].pixels)
    assert pictures[0].origin == pytest.approx(pictures[1].origin)


def test_patient_left_is_screen_right(ras_ct):
    for volume in (ras_ct, lps_twin(ras_ct)):
        for view in ("axial", "coronal"):
            geometry = SliceGeometry(volume, view)
            right_side = geometry.to_plane((-100.0, 0.0, 0.0))[0]  # patient's right (LPS -x)
            left_side = geometry.to_plane((100.0, 0.0, 0.0))[0]
            assert left_side > right_side  # u grows to the screen's right
        axial = SliceGeometry(volume, "axial")
        assert axial.to_plane((0, -100.0, 0))[1] > axial.to_plane((0, 100.0, 0))[1]  # anterior up


def test_oblique_slice_resamples_in_world_space(ras_ct):
    angle = np.radians(20)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    small = ras_ct.array[40:60].astype(np.float32)
    oblique = Volume(small, ras_ct.spacing, (10.0, -5.0, 3.0), rotation @ ras_ct.direction)
    geometry = SliceGeometry(oblique, "axial")
    assert not geometry.aligned
    ijk = np.array([61.0, 50.0, 10.0])
    world = oblique.index_to_world(ijk)
    u, v, w = geometry.to_plane(world)
    image = geometry.extract(oblique.array, w)
    # The sampled point nearest to the voxel centre holds (interpolated) that voxel's value.
    col = round((u - image.origin[0]) / image.spacing[0])
    row = round((v - image.origin[1]) / image.spacing[1])
    back = oblique.world_to_index(
        geometry.to_world(
            (image.origin[0] + col * image.spacing[0], image.origin[1] + row * image.spacing[1], w)
        )
    )
    assert np.abs(back - ijk).max() < 0.6
    from scipy.ndimage import map_coordinates

    expected = map_coordinates(small, [[back[2]], [back[1]], [back[0]]], order=1)[0]
    assert image.pixels[row, col] == pytest.approx(expected, abs=1e-3)


def test_label_rgba_fill_outline_and_hidden():
    labels = np.zeros((8, 8), np.uint8)
    labels[2:6, 2:6] = 1
    labels[0, 0] = 2
    table = LabelTable.from_names({1: "spleen", 2: "liver"})
    table.update(2, visible=False)
    rgba = label_rgba(labels, label_lut(table), fill=True, outline=True, opacity=0.4)
    assert tuple(rgba[3, 3, :3]) == table[1].color and rgba[3, 3, 3] == round(0.4 * 255)
    assert rgba[2, 2, 3] >= 230  # border drawn opaque
    assert rgba[0, 0, 3] == 0 and rgba[7, 7, 3] == 0  # hidden structure, background
    no_fill = label_rgba(labels, label_lut(table), fill=False, outline=True, opacity=0.4)
    assert no_fill[3, 3, 3] == 0 and no_fill[2, 3, 3] >= 230


def _blend_reference(grey, labels, lut, fill, outline, opacity):
    """Grey slice under ``label_rgba``, blended per channel in plain integer arithmetic."""
    rgba = label_rgba(labels, lut, fill, outline, opacity).astype(np.int64)
    alpha = rgba[..., 3:]
    grey3 = np.repeat(grey[..., None].astype(np.int64), 3, axis=2)
    return ((grey3 * (255 - alpha) + rgba[..., :3] * alpha + 127) // 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("fill", "outline", "opacity"), [(True, True, 0.45), (False, True, 0.8), (True, False, 1.0)]
)
def test_overlay_table_matches_blending_label_rgba(
    ras_ct, reference_labels, fill, outline, opacity
):
    labels = read_label_map(reference_labels, ras_ct)
    table = labels.table
    table.update(5, visible=False)  # a hidden structure (liver) must leave the grey untouched
    lut = label_lut(table)
    geometry = SliceGeometry(ras_ct, "axial")
    # The axial slice with most spleen (1) that also shows liver (5).
    per_slice = (labels.array == 1).sum(axis=(1, 2)) * (labels.array == 5).any(axis=(1, 2))
    w = geometry.to_plane(ras_ct.index_to_world((0, 0, int(np.argmax(per_slice)))))[2]
    grey = ((geometry.extract(ras_ct.array, w).pixels.astype(np.int64) + 1024) // 8).clip(0, 255)
    grey = grey.astype(np.uint8)
    slice_labels = geometry.extract(labels.array, w, nearest=True).pixels
    assert {1, 5} <= set(np.unique(slice_labels))
    overlay = OverlayTable(lut, fill, outline, opacity)
    rgba = overlay.compose(grey, slice_labels)
    expected = _blend_reference(grey, slice_labels, lut, fill, outline, opacity)
    assert rgba.shape == (*grey.shape, 4) and np.all(rgba[..., 3] == 255)
    np.testing.assert_array_equal(rgba[..., :3], expected)
    liver = slice_labels == 5
    assert np.array_equal(rgba[liver][:, 0], grey[liver])
    np.testing.assert_array_equal(
        overlay.alpha(slice_labels), label_rgba(slice_labels, lut, fill, outline, opacity)[..., 3]
    )
    # Reusing the last buffer gives the same pixels without allocating.
    again = overlay.compose(grey[::-1].copy(), slice_labels[::-1].copy(), out=rgba)
    assert again is rgba
    np.testing.assert_array_equal(rgba[..., :3], expected[::-1])


def test_overlay_table_with_high_label_values():
    """Sparse values up to 3000 use a compact palette; values past the table clip like the LUT."""
    table = LabelTable.from_names({1: "a", 1500: "b", 3000: "c"})
    table.update(1500, visible=False)
    lut = label_lut(table)
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 1, 1500, 3000, 3100], np.uint16), size=(40, 50))
    labels[10:30, 10:40] = 3000
    grey = rng.integers(0, 256, labels.shape).astype(np.uint8)
    overlay = OverlayTable(lut, True, True, 0.5)
    np.testing.assert_array_equal(
        overlay.compose(grey, labels)[..., :3],
        _blend_reference(grey, labels, lut, True, True, 0.5),
    )
