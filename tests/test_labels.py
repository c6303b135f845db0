"""Label maps: export on the input grid with the sidecar, import with grid checks."""

import json

import nibabel as nib
import numpy as np
import pytest

from ctseg_gui.core.errors import GeometryMismatchError
from ctseg_gui.core.labels import LabelMap, LabelTable, smallest_label_dtype
from ctseg_gui.io import read_image, read_label_map, write_label_map
from ctseg_gui.io.labels import sidecar_path


@pytest.fixture(scope="module")
def names(data_dir):
    raw = json.loads((data_dir / "labels" / "totalseg_v1_104_names.json").read_text())
    return {int(k): v for k, v in raw.items()}


def test_reference_float_labels_load_onto_ct(abdomen_ct, reference_labels, names):
    image = read_image(abdomen_ct)
    labels = read_label_map(reference_labels, image, LabelTable.from_names(names))
    assert labels.array.dtype == np.uint8
    reference = np.asarray(nib.load(reference_labels).dataobj)
    np.testing.assert_array_equal(labels.array, reference.transpose(2, 1, 0).astype(np.uint8))
    assert labels.table[1].name == "spleen" and labels.table[5].name == "liver"


def test_export_lands_on_input_grid_with_sidecar(abdomen_ct, reference_labels, names, tmp_path):
    image = read_image(abdomen_ct)
    labels = read_label_map(reference_labels, image, LabelTable.from_names(names))
    out = write_label_map(labels, tmp_path / "seg.nii.gz")
    written, original = nib.load(out), nib.load(abdomen_ct)
    np.testing.assert_array_equal(written.affine, original.affine)
    assert written.shape == original.shape
    assert written.header["qform_code"] == 1 and written.header["sform_code"] == 1
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(
        np.asarray(written.dataobj), np.asarray(nib.load(reference_labels).dataobj).astype(np.uint8)
    )
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar_path(out).name == "seg.labels.json"
    first = sidecar["labels"][0]
    assert first["value"] == 1 and first["name"] == "spleen" and len(first["color"]) == 3
    # Reading back restores the table from the sidecar.
    back = read_label_map(out, image)
    assert back.table[5].name == "liver"
    np.testing.assert_array_equal(back.array, labels.array)


def test_export_of_dicom_labels_keeps_lps_grid(dicom_series, tmp_path):
    image = read_image(dicom_series)
    array = np.zeros(image.array.shape, np.uint16)
    array[3:8, 100:200, 150:300] = 1
    out = write_label_map(
        LabelMap(array, image, LabelTable.from_names(["lesion"])), tmp_path / "lesion.nii.gz"
    )
    back = read_image(out)
    assert back.same_grid(image)
    np.testing.assert_array_equal(back.array, array)
    assert nib.load(out).get_data_dtype() == np.uint8


def test_grid_mismatch_refused_with_reason(abdomen_ct, small_ct, tmp_path):
    image = read_image(abdomen_ct)
    other = read_image(small_ct)
    labels = LabelMap(np.ones(other.array.shape, np.uint8), other)
    path = write_label_map(labels, tmp_path / "other.nii.gz")
    with pytest.raises(GeometryMismatchError, match="size .* differs") as info:
        read_label_map(path, image)
    assert str(path) in str(info.value)


def test_fractional_labels_refused(abdomen_ct, tmp_path):
    original = nib.load(abdomen_ct)
    data = np.full(original.shape, 0.5, np.float32)
    path = tmp_path / "prob.nii.gz"
    nib.save(nib.Nifti1Image(data, original.affine), path)
    with pytest.raises(GeometryMismatchError, match="non-integer"):
        read_label_map(path, read_image(abdomen_ct))


def test_smallest_dtype():
    assert smallest_label_dtype(104) == np.uint8
    assert smallest_label_dtype(300) == np.uint16
    assert smallest_label_dtype(70000) == np.uint32
