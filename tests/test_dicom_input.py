"""Awkward DICOM input: malformed header numbers (pydicom's badVR.dcm) and enhanced multi-frame CT."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from dicom_fixtures import series_with_uids
from pydicom.data import get_testdata_file

from ctseg_gui.cli import main
from ctseg_gui.core.errors import ImageReadError
from ctseg_gui.io import read_image


@pytest.fixture
def bad_vr(tmp_path):
    """pydicom's badVR.dcm (NumberOfFrames is the integer string '1A'), alone in a folder."""
    source = get_testdata_file("badVR.dcm")
    if source is None:
        pytest.skip("pydicom's test file badVR.dcm is not installed")
    target = tmp_path / "bad" / "badVR.dcm"
    target.parent.mkdir()
    shutil.copy(source, target)
    return target


def test_malformed_integer_string_is_refused_in_one_line(bad_vr, capsys):
    code = main(["info", str(bad_vr)])
    error = capsys.readouterr().err
    assert code == 1, error
    assert error.count("\n") == 1 and "internal error" not in error
    assert str(bad_vr) in error and "NumberOfFrames" in error and "'1A'" in error


def test_a_malformed_file_does_not_hide_the_series_beside_it(bad_vr, dicom_copy):
    shutil.copy(bad_vr, dicom_copy / "badVR.dcm")
    volume = read_image(dicom_copy)
    assert volume.size == (512, 512, 20)
    with pytest.raises(ImageReadError, match="malformed NumberOfFrames value '1A'"):
        read_image(dicom_copy / "badVR.dcm")


def _corrupt(path, tag: bytes, old: bytes, new: bytes) -> None:
    """Overwrite an explicit-VR element's value in place (pydicom will not write bad values)."""
    data = path.read_bytes()
    at = data.index(tag)
    assert data[at + 8 : at + 8 + len(old)] == old
    path.write_bytes(data[: at + 8] + new + data[at + 8 + len(new) :])


def test_malformed_instance_number_loads_but_malformed_spacing_is_refused(dicom_copy):
    first = sorted(dicom_copy.iterdir())[0]
    number = str(pydicom.dcmread(first, stop_before_pixels=True).InstanceNumber).encode()
    # InstanceNumber (0020,0013) IS: only orders slices at equal positions; not worth refusing
    _corrupt(first, b"\x20\x00\x13\x00IS", number, b"B" * len(number))
    assert read_image(dicom_copy).size == (512, 512, 20)
    # PixelSpacing (0028,0030) DS: the voxel size; refused, naming the file
    _corrupt(first, b"\x28\x00\x30\x00DS", b"0.97", b"0.9x")
    with pytest.raises(ImageReadError, match=r"malformed PixelSpacing value '0\.9x"):
        read_image(first)
    with pytest.raises(ImageReadError, match="1 file.s. with damaged headers .*PixelSpacing"):
        read_image(dicom_copy)  # not 19 slices with one silently left out


@pytest.fixture(scope="module")
def enhanced_ct(tmp_path_factory, dicom_series):
    """The test series converted to one Legacy Converted Enhanced CT file by highdicom."""
    hd = pytest.importorskip("highdicom")
    folder = series_with_uids(dicom_series, tmp_path_factory.mktemp("classic") / "ct")
    datasets = [pydicom.dcmread(path) for path in sorted(folder.iterdir())]
    for dataset in datasets:
        dataset.decompress()  # the enhanced file is written uncompressed
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets,
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )
    target = tmp_path_factory.mktemp("enhanced") / "enhanced_ct.dcm"
    enhanced.save_as(target)
    return target, folder


def test_enhanced_multiframe_ct_loads_like_the_classic_series(enhanced_ct):
    path, classic_folder = enhanced_ct
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert int(header.NumberOfFrames) == 20 and header.SOPClassUID.endswith(".2.2")
    enhanced, classic = read_image(path), read_image(classic_folder)
    np.testing.assert_array_equal(enhanced.array, classic.array)  # HU, same slice order
    assert enhanced.same_grid(classic)
    assert enhanced.array.min() == -1024  # rescale applied


def test_info_describes_an_enhanced_file(enhanced_ct, capsys):
    path, _ = enhanced_ct
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "512 x 512 x 20" in out and "enhanced multi-frame" in out


def test_enhanced_file_frames_shuffled_are_sorted_by_position(enhanced_ct, tmp_path):
    path, classic_folder = enhanced_ct
    dataset = pydicom.dcmread(path)
    frames = dataset.pixel_array.copy()
    order = np.random.default_rng(3).permutation(len(frames))
    groups = list(dataset.PerFrameFunctionalGroupsSequence)
    dataset.PerFrameFunctionalGroupsSequence = [groups[i] for i in order]
    dataset.PixelData = np.ascontiguousarray(frames[order]).tobytes()
    shuffled = tmp_path / "shuffled.dcm"
    dataset.save_as(shuffled)
    np.testing.assert_array_equal(read_image(shuffled).array, read_image(classic_folder).array)


def test_position_with_too_few_values_is_refused_naming_the_file(dicom_copy):
    first = sorted(dicom_copy.iterdir())[0]
    dataset = pydicom.dcmread(first)
    dataset.ImagePositionPatient = dataset.ImagePositionPatient[:2]
    dataset.save_as(first)
    with pytest.raises(ImageReadError, match="malformed ImagePositionPatient: 2 value"):
        read_image(first)
