"""NIfTI / NRRD / MetaImage reading and writing on the real CT, RAS and LPS."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ctseg_gui.core.errors import CtsegError, ImageReadError
from ctseg_gui.io import read_image, write_image


@pytest.fixture
def lps_copy(tmp_path, abdomen_ct):
    """The abdomen CT stored in LPS order: i and j flipped, affine adjusted to the same anatomy."""
    image = nib.load(abdomen_ct)
    flipped = image.as_reoriented(np.array([[0, -1], [1, -1], [2, 1]]))
    path = tmp_path / "lps.nii.gz"
    nib.save(flipped, path)
    assert "".join(nib.aff2axcodes(nib.load(path).affine)) == "LPS"
    return path


@pytest.mark.parametrize("which", ["ras", "lps"])
def test_nifti_round_trip_keeps_affine_and_voxels(which, abdomen_ct, lps_copy, tmp_path):
    source = abdomen_ct if which == "ras" else lps_copy
    volume = read_image(source)
    out = write_image(volume, tmp_path / "out.nii.gz")
    original, written = nib.load(source), nib.load(out)
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-4)
    np.testing.assert_array_equal(written.get_fdata(), original.get_fdata())
    assert written.header["qform_code"] > 0 and written.header["sform_code"] > 0


def test_ras_and_lps_files_give_the_same_world(abdomen_ct, lps_copy):
    ras, lps = read_image(abdomen_ct), read_image(lps_copy)
    assert ras.orientation_code == "RAS" and lps.orientation_code == "LPS"
    # The same physical voxel carries the same HU in both files.
    world = ras.index_to_world((40, 30, 50))
    index = np.rint(lps.world_to_index(world)).astype(int)
    assert ras.array[50, 30, 40] == lps.array[index[2], index[1], index[0]]


def test_geometry_matches_simpleitk(abdomen_ct):
    ours = read_image(abdomen_ct)
    reference = sitk.ReadImage(str(abdomen_ct))
    np.testing.assert_array_equal(ours.array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(ours.origin, reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.direction.ravel(), reference.GetDirection(), atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".mha", ".mhd", ".nii"])
def test_other_formats_round_trip(suffix, lps_copy, tmp_path):
    volume = read_image(lps_copy)
    back = read_image(write_image(volume, tmp_path / f"ct{suffix}"))
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine_lps, volume.affine_lps, atol=1e-4)


def test_truncated_nifti_refused(abdomen_ct, tmp_path):
    data = abdomen_ct.read_bytes()
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(truncated)
    assert str(truncated) in str(info.value)


def test_truncated_uncompressed_nifti_refused(abdomen_ct, tmp_path):
    raw = gzip.decompress(abdomen_ct.read_bytes())
    truncated = tmp_path / "cut.nii"
    truncated.write_bytes(raw[:-5000])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(truncated)


def test_multi_member_gzip_still_loads(abdomen_ct, tmp_path):
    raw = gzip.decompress(abdomen_ct.read_bytes())
    joined = tmp_path / "two_members.nii.gz"
    joined.write_bytes(gzip.compress(raw[:100000]) + gzip.compress(raw[100000:]))
    np.testing.assert_array_equal(read_image(joined).array, read_image(abdomen_ct).array)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.nii.gz", b"this is not gzip at all" * 20, "not a readable NIfTI"),
        ("empty.nrrd", b"", "empty"),
        ("notes.txt", b"hello", "not a supported image"),
        ("broken.mha", b"ObjectType = Image\nNDims = 3\n", "cannot read"),
    ],
)
def test_bad_files_refused(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_path_refused(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nothing.nii.gz")


def test_2d_image_refused(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), path)
    with pytest.raises(ImageReadError, match="2D"):
        read_image(path)


def test_unsupported_output_format(abdomen_ct, tmp_path):
    with pytest.raises(CtsegError, match="unsupported output"):
        write_image(read_image(abdomen_ct), tmp_path / "ct.png")
