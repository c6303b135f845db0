"""DICOM SEG and RTSTRUCT export/import on the real 20-slice JPEG 2000 series (given UIDs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from dicom_fixtures import dice, organ_labels, rasterise_rtstruct, series_with_uids

from ctseg_gui.cli import main
from ctseg_gui.core.errors import CtsegError, GeometryMismatchError
from ctseg_gui.core.provenance import Provenance
from ctseg_gui.io import read_image, read_label_map, write_label_map
from ctseg_gui.io.dicom_export import referenced_series
from ctseg_gui.io.dicom_seg import export_seg, import_seg, read_seg_provenance
from ctseg_gui.io.labels import read_provenance
from ctseg_gui.io.rtstruct import export_rtstruct, read_rtstruct_provenance

hd = pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory, dicom_series):
    return series_with_uids(dicom_series, tmp_path_factory.mktemp("uids") / "ct")


@pytest.fixture(scope="module")
def series(series_dir):
    return referenced_series(series_dir)


@pytest.fixture(scope="module")
def organs(series):
    return organ_labels(series.grid)


@pytest.fixture(scope="module")
def seg_file(organs, series_dir, tmp_path_factory):
    return export_seg(organs, series_dir, tmp_path_factory.mktemp("seg") / "organs.seg.dcm")


def test_seg_round_trip_gives_identical_voxels_names_and_colours(organs, seg_file, series_dir):
    back = import_seg(seg_file, series_dir)
    np.testing.assert_array_equal(back.array, organs.array)
    assert back.image.same_grid(organs.image)
    present = organs.present_values()
    assert len(present) > 15  # many structures, not a toy map
    for value in present:
        assert back.table[value].name == organs.table[value].name
        # CIELab in 16-bit DICOM values and back: within one RGB step
        assert np.abs(np.subtract(back.table[value].color, organs.table[value].color)).max() <= 1


def test_seg_references_the_series_with_frames_only_where_a_segment_is(organs, seg_file, series):
    seg = hd.seg.segread(seg_file)
    assert seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.entry.uid
    assert seg.StudyInstanceUID == series.headers[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == series.headers[0].FrameOfReferenceUID
    present = organs.present_values()
    expected = sum(int(np.any(organs.array == v, axis=(1, 2)).sum()) for v in present)
    assert int(seg.NumberOfFrames) == expected
    referenced = {str(h.SOPInstanceUID) for h in series.headers}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID in referenced
    labels = [seg.get_segment_description(n).segment_label for n in seg.segment_numbers]
    assert labels == [organs.table[v].name for v in present]


def test_seg_validates_with_pydicom_and_dciodvfy(seg_file):
    with pydicom.config.strict_reading():
        dataset = pydicom.dcmread(seg_file)
        for element in dataset.iterall():  # converting every value raises on a bad one
            _ = element.value
    assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    _dciodvfy_clean(seg_file)


def test_rtstruct_contours_rasterise_back_to_each_structure(organs, series_dir, tmp_path):
    path = export_rtstruct(organs, series_dir, tmp_path / "rt.dcm")
    dataset = pydicom.dcmread(path)
    present = organs.present_values()
    rois = {int(r.ROINumber): r.ROIName for r in dataset.StructureSetROISequence}
    assert list(rois.values()) == [organs.table[v].name for v in present]
    scores = {}
    for number, value in enumerate(present, start=1):
        mask = rasterise_rtstruct(dataset, number, organs.image)
        scores[rois[number]] = dice(mask, organs.array == value)
    assert min(scores.values()) >= 0.95, sorted(scores.items(), key=lambda kv: kv[1])[:5]
    _dciodvfy_clean(path)


def test_rtstruct_coordinates_fit_their_value_representation(series_dir, tmp_path):
    """With 0.7 mm pixels, coordinates are float sums (2.0999999999999996): DS takes 16 chars."""
    odd = tmp_path / "odd"
    shutil.copytree(series_dir, odd)
    for path in odd.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.PixelSpacing = ["0.7", "0.7"]
        dataset.save_as(path)
    grid = referenced_series(odd).grid
    path = export_rtstruct(organ_labels(grid), odd, tmp_path / "rt.dcm")
    dataset = pydicom.dcmread(path)
    written = [
        str(value)
        for roi in dataset.ROIContourSequence
        for contour in roi.ContourSequence
        for value in contour.ContourData
    ]
    assert written and max(len(text) for text in written) <= 16
    mask = rasterise_rtstruct(dataset, 1, grid)
    assert dice(mask, organ_labels(grid).array == organ_labels(grid).present_values()[0]) >= 0.95
    _dciodvfy_clean(path)


def test_every_export_records_provenance(series_dir, series, tmp_path):
    from ctseg_gui.core.history import LabelEditor
    from ctseg_gui.inference import segment_volume

    image = read_image(series_dir)
    labels = segment_volume(image, "ct-tissues")
    # Thresholded tissue classes are speckled (30 000 contours on 20 slices); bone alone keeps
    # the RTSTRUCT small.
    labels.array[labels.array != 5] = 0
    editor = LabelEditor(labels)
    brush = np.zeros(labels.array.shape, dtype=bool)
    brush[10, 200:220, 200:220] = True
    assert editor.paint(brush, 7, "paint")
    brush[10, 100:110, 100:110] = True
    assert editor.paint(brush, 7, "positive click")
    assert editor.paint(brush, 0, "erase")
    assert editor.undo()  # an undone edit is not counted
    nifti = write_label_map(labels, tmp_path / "tissues.nii.gz")
    seg = export_seg(labels, series_dir, tmp_path / "tissues.seg.dcm")
    rt = export_rtstruct(labels, series_dir, tmp_path / "tissues.rt.dcm")
    records = {
        "sidecar": read_provenance(nifti),
        "seg": read_seg_provenance(hd.seg.segread(seg)),
        "rtstruct": read_rtstruct_provenance(rt),
    }
    for where, record in records.items():
        assert isinstance(record, Provenance), where
        assert (record.model_id, record.backend, record.device) == ("ct-tissues", "numpy", "cpu")
        assert record.precision == "fp32 (float32)" and record.model_version
        assert record.input == {"series_uid": series.entry.uid}, where
        assert (record.clicks, record.edits) == (1, {"paint": 1}), where
        assert record.app_version.startswith("ctseg-gui ") and record.created[:4].isdigit()
    # the SEG's standard fields say the same
    dataset = pydicom.dcmread(seg, stop_before_pixels=True)
    algorithm = dataset.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "ct-tissues"
    assert dataset.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert dataset.ContentDescription.startswith("ct-tissues v")
    assert pydicom.dcmread(rt).StructureSetROISequence[0].ROIGenerationAlgorithm == "SEMIAUTOMATIC"
    # read back with the NIfTI, the record carries on counting
    again = read_label_map(nifti, image)
    assert again.provenance.model_id == "ct-tissues" and again.edit_tally["paint"] == 1


def test_file_input_provenance_is_a_checksum(small_ct, tmp_path):
    import hashlib

    from ctseg_gui.inference import segment_volume

    labels = segment_volume(read_image(small_ct), "ct-tissues")
    record = read_provenance(write_label_map(labels, tmp_path / "l.nii.gz"))
    assert record.input["sha256"] == hashlib.sha256(small_ct.read_bytes()).hexdigest()


def test_cli_export_and_import_seg_and_rtstruct(organs, series_dir, tmp_path, capsys):
    labels_path = write_label_map(organs, tmp_path / "organs.nii.gz")
    seg, back, rt = tmp_path / "o.seg.dcm", tmp_path / "back.nii.gz", tmp_path / "o.rt.dcm"
    assert main(["export-seg", str(labels_path), str(series_dir), "-o", str(seg)]) == 0
    assert main(["import-seg", str(seg), str(series_dir), "-o", str(back)]) == 0
    assert main(["export-rtstruct", str(labels_path), str(series_dir), "-o", str(rt)]) == 0
    image = read_image(series_dir)
    np.testing.assert_array_equal(read_label_map(back, image).array, organs.array)
    sidecar = json.loads((tmp_path / "back.labels.json").read_text())
    assert sidecar["labels"][0]["name"] == organs.table[organs.present_values()[0]].name
    assert "DICOM SEG" in capsys.readouterr().out


def test_anonymised_series_without_uids_is_refused_in_one_line(dicom_series, tmp_path, capsys):
    image = read_image(dicom_series)
    labels = write_label_map(organ_labels(image), tmp_path / "l.nii.gz")
    code = main(["export-seg", str(labels), str(dicom_series), "-o", str(tmp_path / "s.dcm")])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert "has no StudyInstanceUID" in error and "anonymised" in error


def test_labels_off_the_series_grid_are_refused(series_dir, abdomen_ct, reference_labels, tmp_path):
    with pytest.raises(GeometryMismatchError, match="not on the image grid"):
        main_args = [
            "export-seg",
            str(reference_labels),
            str(series_dir),
            "-o",
            str(tmp_path / "x"),
        ]
        from ctseg_gui.commands import export_seg as command

        command.run(command_args(main_args))
    labels = organ_labels(read_image(abdomen_ct))  # the right shape of labels, wrong image
    with pytest.raises(GeometryMismatchError, match="not on the grid of series"):
        export_seg(labels, series_dir, tmp_path / "x.dcm")


def test_seg_of_another_series_is_refused(seg_file, series_dir, tmp_path):
    other = series_with_uids(series_dir, tmp_path / "other")
    with pytest.raises(CtsegError, match="no series with UID"):
        import_seg(seg_file, other)
    shutil.copytree(series_dir, tmp_path / "both" / "a")
    shutil.copytree(other, tmp_path / "both" / "b")
    wrong = referenced_series(other).entry.uid
    with pytest.raises(CtsegError, match="the SEG references series"):
        import_seg(seg_file, tmp_path / "both", series_uid=wrong)


def test_without_the_interop_extra_the_commands_say_what_to_install(
    organs, series_dir, tmp_path, monkeypatch, capsys
):
    labels_path = write_label_map(organs, tmp_path / "organs.nii.gz")
    monkeypatch.setitem(sys.modules, "highdicom", None)
    monkeypatch.setitem(sys.modules, "rt_utils", None)
    for command in ("export-seg", "export-rtstruct"):
        code = main([command, str(labels_path), str(series_dir), "-o", str(tmp_path / "x.dcm")])
        error = capsys.readouterr().err
        assert code == 1 and "install ctseg-gui[interop]" in error and error.count("\n") == 1


def command_args(argv):
    from ctseg_gui.cli import build_parser

    return build_parser().parse_args(argv)


def _dciodvfy_clean(path) -> None:
    """dciodvfy (Debian package dicom3tools) finds no errors; skipped where it is missing."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    report = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    errors = [line for line in (report.stdout + report.stderr).splitlines() if "Error" in line]
    assert not errors, errors[:10]
