"""Rendering tests: pixels that VTK drew (needs a real X server with OpenGL, e.g. xvfb-run)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctseg_gui.core.volume import Volume
from ctseg_gui.io import read_image, write_image
from ctseg_gui.qt.screenshot import vtk_view_image
from ctseg_gui.render.slice_scene import grey_pixels


def _pixel(view, world) -> np.ndarray:
    view.render_now()
    pixels = vtk_view_image(view)
    x, y = view.world_to_display(world)
    return pixels[int(y), int(x)].astype(int)


def _quiet(viewer) -> None:
    # Crosshair and text off: only image and label pixels remain to check.
    for view in viewer.slice_views.values():
        view.scene.show_crosshair(False)
        for actor in [*view.scene.letters, *view.scene.corners.values()]:
            actor.SetVisibility(False)


def _soft_tissue_voxel(volume: Volume, near_hu: float) -> tuple[int, int, int]:
    """A voxel near the middle, near ``near_hu``, in a fairly even 3x3x3 neighbourhood."""
    array = volume.array.astype(float)
    spread = ndimage.maximum_filter(array, 3) - ndimage.minimum_filter(array, 3)
    k, j, i = np.nonzero((spread < 40) & (np.abs(array - near_hu) < 30))
    centre = np.array(volume.array.shape) / 2
    best = np.argmin((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2)
    return int(i[best]), int(j[best]), int(k[best])


def test_ct_grey_follows_the_preset(viewer, open_and_wait, abdomen_ct):
    open_and_wait(viewer, abdomen_ct)
    _quiet(viewer)
    image = viewer.document.image
    viewer.state.interpolate = False  # raw voxels: the pixel shows exactly this voxel's HU
    i, j, k = _soft_tissue_voxel(image, 50.0)
    hu = float(image.array[k, j, i])
    world = image.index_to_world((i, j, k))
    viewer.state.cursor = world
    for name in ("Soft tissue", "Liver", "Lung"):
        viewer.state.apply_preset(name)
        width, level = viewer.state.window
        expected = np.clip((hu - (level - width / 2)) / width, 0, 1) * 255
        for view in viewer.slice_views.values():
            rgb = _pixel(view, world)
            assert np.all(np.abs(rgb - expected) <= 2), (name, view.view, hu, rgb, expected)


def test_smooth_slice_lies_where_the_mouse_maps_it(viewer, open_and_wait, abdomen_ct):
    """Linear display: each screen pixel shows the CT interpolated at the point that the view
    maps that pixel to (what the mouse reads out). Half a pixel of misplacement shows up as
    large errors at every edge."""
    open_and_wait(viewer, abdomen_ct)
    _quiet(viewer)
    viewer.state.interpolate = True
    viewer.state.apply_preset("Soft tissue")
    for name in ("axial", "sagittal"):
        view = viewer.slice_views[name]
        view.render_now()
        shown = vtk_view_image(view)[..., 0].astype(float)
        image = view.current_slice()
        grey = grey_pixels(image.pixels, *viewer.state.window).astype(float)
        rows, cols = np.mgrid[0 : shown.shape[0], 0 : shown.shape[1]]
        u, v = view.scene.display_to_plane(cols + 0.5, rows + 0.5)  # pixel centres
        col = (u - image.origin[0]) / image.spacing[0]
        row = (v - image.origin[1]) / image.spacing[1]
        inside = (col > 1) & (col < grey.shape[1] - 2) & (row > 1) & (row < grey.shape[0] - 2)
        assert inside.mean() > 0.3
        expected = ndimage.map_coordinates(grey, [row[inside], col[inside]], order=1)
        error = np.abs(shown[inside] - expected)
        assert np.percentile(error, 99) <= 4, (name, np.percentile(error, [50, 99, 100]))


def test_labelled_voxel_shows_its_colour(viewer, open_and_wait, abdomen_ct, reference_labels):
    open_and_wait(viewer, abdomen_ct, reference_labels)
    _quiet(viewer)
    labels = viewer.document.labels
    core = ndimage.binary_erosion(labels.array == 1, iterations=2)  # spleen, away from borders
    k, j, i = (int(np.median(a)) for a in np.nonzero(core))
    assert core[k, j, i]
    world = viewer.document.image.index_to_world((i, j, k))
    viewer.state.cursor = world
    viewer.state.opacity = 1.0
    viewer.state.outline = False
    colour = np.array(labels.table[1].color)
    for view in viewer.slice_views.values():
        assert np.all(np.abs(_pixel(view, world) - colour) <= 2), view.view
    viewer.document.update_label(1, visible=False)  # hidden: the CT shows through again
    assert np.abs(_pixel(viewer.slice_views["axial"], world) - colour).max() > 40
    viewer.document.update_label(1, visible=True)
    viewer.state.opacity = 0.5  # half: a blend of CT grey and colour
    blended = _pixel(viewer.slice_views["axial"], world)
    assert np.all(blended > colour * 0.5 - 3) and np.abs(blended - colour).max() > 20


def _with_markers(volume: Volume) -> tuple[Volume, list[np.ndarray]]:
    """The CT with two bright cubes: 9000 HU 60 mm to the patient's left, 6000 HU 60 mm anterior."""
    array = volume.array.astype(np.int16).copy()
    centre = volume.index_to_world((np.asarray(volume.size) - 1) // 2)
    markers = []
    for offset, value in (((60.0, 0.0, 0.0), 9000), ((0.0, -60.0, 0.0), 6000)):
        i, j, k = np.rint(volume.world_to_index(centre + np.array(offset))).astype(int)
        array[k - 2 : k + 3, j - 2 : j + 3, i - 2 : i + 3] = value
        markers.append(volume.index_to_world((i, j, k)))
    return volume.with_array(array), markers


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    assert rows.size > 4
    return float(cols.mean()), float(rows.mean())


def _oblique(volume: Volume, degrees: float = 15.0) -> Volume:
    """The same voxels on a grid turned about the patient's long axis (an oblique series)."""
    a = np.radians(degrees)
    turn = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return Volume(volume.array, volume.spacing, volume.origin, turn @ volume.direction)


@pytest.mark.parametrize("storage", ["RAS", "LPS", "oblique"])
def test_patient_left_on_screen_right(
    viewer, open_and_wait, abdomen_ct, lps_twin, tmp_path, storage
):
    source = read_image(abdomen_ct)
    if storage == "oblique":
        source = _oblique(source)
    volume, (left_marker, front_marker) = _with_markers(source)
    if storage == "oblique":
        path = write_image(volume, tmp_path / "ct_oblique.nrrd")
    elif storage == "LPS":
        path = write_image(lps_twin(volume), tmp_path / "ct_lps.nrrd")
    else:
        path = write_image(volume, tmp_path / "ct_ras.nii.gz")
    open_and_wait(viewer, path)
    _quiet(viewer)
    image = viewer.document.image
    assert image.orientation_code == ("RAS" if storage == "oblique" else storage)
    assert image.is_oblique == (storage == "oblique")
    centre = np.asarray(viewer.state.cursor)
    for view_name, up_marker in (("axial", "anterior"), ("coronal", None)):
        view = viewer.slice_views[view_name]
        cx, cy = view.world_to_display(centre)
        viewer.state.set_window(10, 8000)  # only the left marker (9000 HU) is white
        view.render_now()
        left = vtk_view_image(view)[..., 0] > 128
        x, y = _centroid(left)
        assert x > cx + 20, f"{view_name}: patient's left drawn at x={x:.0f}, centre {cx:.0f}"
        assert abs(y - cy) < 4
        ex, ey = view.world_to_display(left_marker)
        assert abs(x - ex) < 3 and abs(y - ey) < 3
        if up_marker:
            viewer.state.set_window(10, 5000)  # both markers white
            view.render_now()
            near_left = ndimage.binary_dilation(left, iterations=8)  # its blurred rim, too
            x, y = _centroid((vtk_view_image(view)[..., 0] > 128) & ~near_left)
            assert y < cy - 20, "anterior must be at the top of the axial view"
            ex, ey = view.world_to_display(front_marker)
            assert abs(x - ex) < 3 and abs(y - ey) < 3


def test_3d_view_draws_label_surfaces(viewer, open_and_wait, abdomen_ct, reference_labels):
    open_and_wait(viewer, abdomen_ct, reference_labels)
    view = viewer.view3d
    view.rebuild()
    assert view.scene.surface_cells > 1000

    def coloured_pixels() -> int:
        view.render_now()
        rgb = vtk_view_image(view).astype(int)
        # Surfaces are saturated colours; the background is a dark blue-grey gradient.
        return int(np.count_nonzero(rgb.max(-1) - rgb.min(-1) > 60))

    shown = coloured_pixels()
    assert shown > 0.05 * view.width() * view.height()
    viewer.document.set_all_visible(False)
    view.rebuild()
    assert view.scene.surface_cells == 0 and coloured_pixels() < shown / 20
    viewer.document.update_label(5, visible=True)  # liver alone
    view.rebuild()
    assert 0 < coloured_pixels() < shown
