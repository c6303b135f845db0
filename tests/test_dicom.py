"""DICOM series discovery and loading on the real JPEG 2000 series, and on damaged copies."""

import random
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ctseg_gui.core.errors import CtsegWarning, ImageReadError
from ctseg_gui.io import dicom, read_image, write_image


def sitk_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def edit_files(folder, change, which=None):
    """Apply ``change(dataset, index)`` to the files (sorted by position) and save them."""
    paths = sorted(
        folder.iterdir(),
        key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    for index, path in enumerate(paths):
        if which is None or index in which:
            dataset = pydicom.dcmread(path)
            change(dataset, index)
            dataset.save_as(path)
    return paths


def test_series_matches_simpleitk(dicom_series):
    ours = read_image(dicom_series)
    reference = sitk_series(dicom_series)
    np.testing.assert_array_equal(ours.array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(ours.spacing, reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(ours.origin, reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.direction.ravel(), reference.GetDirection(), atol=1e-4)
    assert ours.modality == "CT"
    assert ours.array.min() == -1024  # rescale intercept applied: HU, not raw stored values


def test_series_written_as_nifti_matches_simpleitk(dicom_series, tmp_path):
    out = write_image(read_image(dicom_series), tmp_path / "ct.nii.gz")
    written = sitk.ReadImage(str(out))
    reference = sitk_series(dicom_series)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(reference)
    )
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-4)


def test_slices_ordered_by_position_not_name(dicom_copy, dicom_series):
    names = sorted(dicom_copy.iterdir())
    shuffled = names[:]
    random.Random(3).shuffle(shuffled)
    for index, path in enumerate(shuffled):  # names now say nothing about the order
        path.rename(dicom_copy / f"img{index:03d}")
    np.testing.assert_array_equal(read_image(dicom_copy).array, read_image(dicom_series).array)


def test_single_file_loads_its_series(dicom_series):
    first = sorted(dicom_series.iterdir())[0]
    assert read_image(first).size == (512, 512, 20)


def test_rescale_slope_intercept_applied(dicom_copy, dicom_series):
    edit_files(dicom_copy, lambda ds, i: setattr(ds, "RescaleIntercept", -1000))
    shifted = read_image(dicom_copy).array.astype(int)
    original = read_image(dicom_series).array.astype(int)
    np.testing.assert_array_equal(shifted - original, 24)


def test_missing_slice_refused(dicom_copy):
    paths = edit_files(dicom_copy, lambda ds, i: None, which=set())
    paths[7].unlink()
    with pytest.raises(ImageReadError, match="missing slice") as info:
        read_image(dicom_copy)
    assert str(dicom_copy) in str(info.value)


def test_mixed_orientation_refused(dicom_copy):
    def tilt(ds, index):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]

    edit_files(dicom_copy, tilt, which={3})
    with pytest.raises(ImageReadError, match="orientations"):
        read_image(dicom_copy)


def test_mixed_slice_sizes_refused(dicom_copy):
    def shrink(ds, index):  # headers are checked before any pixel is decoded
        ds.Rows, ds.Columns = 256, 256

    edit_files(dicom_copy, shrink, which={4})
    with pytest.raises(ImageReadError, match="mixes slice sizes"):
        read_image(dicom_copy)


def test_gantry_tilt_refused(dicom_copy):
    def shear(ds, index):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + index * 0.5, z]

    edit_files(dicom_copy, shear)
    with pytest.raises(ImageReadError, match="gantry tilt"):
        read_image(dicom_copy)


def test_slightly_uneven_spacing_loads_with_warning(dicom_copy):
    def jitter(ds, index):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + (0.1 if index % 2 else 0.0)]

    edit_files(dicom_copy, jitter)
    with pytest.warns(CtsegWarning, match="slice spacing varies"):
        volume = read_image(dicom_copy)
    assert volume.size == (512, 512, 20)


def test_several_series_listed_and_largest_ct_chosen(tmp_path, dicom_series):
    ct = tmp_path / "study" / "ct"
    mr = tmp_path / "study" / "mr"
    shutil.copytree(dicom_series, ct)
    shutil.copytree(dicom_series, mr)
    paths = sorted(ct.iterdir())
    for path in paths[10:]:
        path.unlink()  # a 10-slice CT series
    for path in sorted(ct.iterdir()):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.3.4.10"
        ds.SeriesDescription = "short CT"
        ds.save_as(path)
    for path in sorted(mr.iterdir()):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.3.4.20"
        ds.Modality = "MR"
        ds.save_as(path)
    series = dicom.scan_folder(tmp_path / "study")
    assert {s.uid: (s.modality, s.number_of_slices) for s in series} == {
        "1.2.3.4.10": ("CT", 10),
        "1.2.3.4.20": ("MR", 20),
    }
    assert dicom.choose_series(series).uid == "1.2.3.4.10"  # the CT, though the MR is larger
    assert read_image(tmp_path / "study", series_uid="1.2.3.4.20").modality == "MR"
    with pytest.raises(ImageReadError, match="no series with UID"):
        read_image(tmp_path / "study", series_uid="9.9")


def test_empty_and_non_dicom_folders_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="empty"):
        read_image(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "CT.1.2.3").write_bytes(b"\0" * 300)
    with pytest.raises(ImageReadError, match="no DICOM image series"):
        read_image(junk)


def test_truncated_dicom_file_refused(dicom_copy):
    victim = sorted(dicom_copy.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="truncated or damaged") as info:
        read_image(dicom_copy)
    assert str(victim) in str(info.value)
