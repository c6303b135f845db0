"""Batch segmentation: case discovery, one model load for many CTs, resuming, per-stage timings."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from bundles import build_spleen_bundle

from ctseg_gui.cli import main
from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.volume import Volume
from ctseg_gui.inference import resolve_model
from ctseg_gui.inference.batch import CSV_COLUMNS, BatchRunner, StageTimer, is_complete
from ctseg_gui.inference.engine import clear_model_cache
from ctseg_gui.io import read_image, write_image
from ctseg_gui.io.cases import find_cases


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    clear_model_cache()  # so each test sees its own network builds


@pytest.fixture(scope="module")
def spleen_bundle(tmp_path_factory):
    return build_spleen_bundle(tmp_path_factory.mktemp("bundles") / "spleen")


@pytest.fixture(scope="module")
def tiny_ct(tmp_path_factory, small_ct):
    """A 64 x 64 x 30 corner of the real 30-slice CT: real HU, a fast network pass."""
    volume = read_image(small_ct)
    path = tmp_path_factory.mktemp("tiny") / "tiny.nii.gz"
    corner = np.ascontiguousarray(volume.array[:, :64, :64])
    write_image(Volume(corner, volume.spacing, volume.origin, volume.direction), path)
    return path


@pytest.fixture
def ct_folder(tmp_path, tiny_ct):
    """Two CTs, one broken file, one non-CT image, plus things that are not cases."""
    folder = tmp_path / "cts"
    folder.mkdir()
    shutil.copy(tiny_ct, folder / "a_case.nii.gz")
    shutil.copy(tiny_ct, folder / "b_case.nii.gz")
    (folder / "c_broken.nii.gz").write_bytes(b"not a nifti at all")
    volume = read_image(tiny_ct)
    write_image(volume.with_array((volume.array > 0).astype(np.int16) * 300), folder / "d_mr.nrrd")
    (folder / "notes.txt").write_text("not a case")
    (folder / "._a_case.nii.gz").write_bytes(b"macOS fork")
    (folder / "empty_sub").mkdir()
    return folder


def test_folder_cases_are_images_and_dicom_series_folders(ct_folder, dicom_series):
    shutil.copytree(dicom_series, ct_folder / "series_x")
    found = find_cases(ct_folder)
    assert found.batch and found.source == "folder"
    assert [c.name for c in found.cases] == [
        "a_case",
        "b_case",
        "c_broken",
        "d_mr",
        "series_x",
    ]
    assert found.cases[-1].image == ct_folder / "series_x"


def test_single_inputs_are_not_batches(tiny_ct, dicom_series, tmp_path):
    assert not find_cases(tiny_ct).batch
    assert not find_cases(dicom_series).batch
    # PATIENT/STUDY/SERIES: one tree of DICOM files is one CT, as before
    shutil.copytree(dicom_series, tmp_path / "patient" / "study" / "series")
    found = find_cases(tmp_path / "patient")
    assert not found.batch and found.cases[0].image == tmp_path / "patient"


def test_msd_folder_and_datalists(tmp_path, tiny_ct):
    task = tmp_path / "Task09_Spleen"
    for sub in ("imagesTr", "imagesTs"):
        (task / sub).mkdir(parents=True)
    shutil.copy(tiny_ct, task / "imagesTr" / "spleen_1.nii.gz")
    shutil.copy(tiny_ct, task / "imagesTs" / "spleen_7.nii.gz")
    found = find_cases(task)
    assert found.source == "msd" and [c.name for c in found.cases] == ["spleen_7"]

    plain = tmp_path / "list.json"
    plain.write_text(json.dumps([{"image": "Task09_Spleen/imagesTr/spleen_1.nii.gz"}]))
    assert find_cases(plain).cases[0].image == task / "imagesTr" / "spleen_1.nii.gz"

    monai = task / "datalist.json"
    monai.write_text(
        json.dumps(
            {
                "training": [
                    {"image": "imagesTr/spleen_1.nii.gz", "label": "labelsTr/spleen_1.nii.gz"}
                ],
                "validation": [{"image": "imagesTs/spleen_7.nii.gz"}],
                "test": ["./imagesTs/spleen_7.nii.gz"],
            }
        )
    )
    found = find_cases(monai)
    assert found.source == "datalist[test]" and found.cases[0].name == "spleen_7"
    training = find_cases(monai, datalist_key="training").cases[0]
    assert training.label == task / "labelsTr" / "spleen_1.nii.gz"
    with pytest.raises(CtsegError, match="no 'testing' list"):
        find_cases(monai, datalist_key="testing")
    bad = tmp_path / "bad.json"
    bad.write_text('{"training": [{"label": "x.nii.gz"}]}')
    with pytest.raises(CtsegError, match="case 0 of the datalist has no image path"):
        find_cases(bad)


def test_stage_timer_gives_each_interval_to_its_stage():
    ticks = iter([0.0, 1.0, 1.5, 4.0, 4.25, 4.5, 6.0, 6.5])
    timer = StageTimer(first="read", clock=lambda: next(ticks))
    timer.finish("read")  # t=1: read 1 s
    timer("loading", 0.0)  # t=1.5: gap before a stage opens stays with read
    timer("inference", 0.5)  # t=4: 2.5 s of network
    timer("inference", 1.0)  # t=4.25
    timer("resampling", 0.0)  # t=4.5: the gap is still network
    timer("resampling", 1.0)  # t=6: invert 1.5 s
    timer.finish("postprocess")  # t=6.5
    assert timer.seconds == {
        "read": 1.5,
        "preprocess": 0.0,
        "network": 3.0,
        "invert": 1.5,
        "postprocess": 0.5,
        "write": 0.0,
    }


def test_batch_loads_the_network_once_and_goes_on_past_bad_cases(
    ct_folder, spleen_bundle, tmp_path, capsys
):
    out, timings = tmp_path / "out", tmp_path / "t.csv"
    argv = [
        "segment",
        str(ct_folder),
        "--bundle",
        str(spleen_bundle),
        "-o",
        str(out),
        "--timings",
        str(timings),
        "-q",
    ]
    assert main(argv) == 1  # two bad cases
    captured = capsys.readouterr()
    assert "c_broken: failed: " in captured.out and "not a readable NIfTI" in captured.out
    assert "d_mr: failed: " in captured.out and "do not look like CT" in captured.out
    assert "network built 1 time(s) for 2 case(s)" in captured.out
    assert "2 of 4 cases failed: c_broken, d_mr" in captured.err
    assert "model load (once" in captured.out
    for name in ("a_case", "b_case"):
        labels = read_image(out / f"{name}.nii.gz")
        assert labels.size == read_image(ct_folder / f"{name}.nii.gz").size
        assert json.loads((out / f"{name}.labels.json").read_text())["labels"][0]["name"] == (
            "spleen"
        )
    assert sorted(p.name for p in out.iterdir()) == [
        "a_case.labels.json",
        "a_case.nii.gz",
        "b_case.labels.json",
        "b_case.nii.gz",
    ]
    with open(timings) as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["case"] for r in rows] == ["a_case", "b_case"]
    for row in rows:
        stages = [float(row[c]) for c in CSV_COLUMNS[1:-1]]
        assert float(row["network_s"]) > 0 and float(row["read_s"]) > 0
        assert float(row["total_s"]) == pytest.approx(sum(stages), abs=0.005)

    # Second run: finished cases are skipped, each with a line; --overwrite redoes them.
    (out / "b_case.nii.gz").unlink()  # as a killed run would leave it: no label file at all
    (out / "a_case.nii.gz").touch()
    assert main(argv) == 1
    captured = capsys.readouterr().out
    assert "a_case: skipped" in captured and "--overwrite" in captured
    assert "b_case: b_case.nii.gz, 1 labels (spleen)" in captured
    with open(timings) as handle:
        resumed = list(csv.DictReader(handle))
    assert [r["case"] for r in resumed] == ["a_case", "b_case"]
    assert resumed[0] == rows[0]  # the skipped case keeps the row of the run that made it
    assert main([*argv, "--overwrite"]) == 1
    assert "a_case: a_case.nii.gz" in capsys.readouterr().out


def test_runner_reuses_one_network_for_every_case(tiny_ct, spleen_bundle, tmp_path):
    runner = BatchRunner(resolve_model(None, str(spleen_bundle)), device="cpu")
    cases = find_cases(tiny_ct).cases * 3
    outputs = [tmp_path / f"{i}.nii.gz" for i in range(3)]
    results = list(runner.run(cases, outputs))
    assert [r.status for r in results] == ["done"] * 3
    assert runner.networks_built == 1 and runner.load_seconds > 0
    first, later = results[0].seconds, results[-1].seconds
    assert set(first) == {"read", "preprocess", "network", "invert", "postprocess", "write"}
    assert all(is_complete(path) for path in outputs)
    np.testing.assert_array_equal(read_image(outputs[0]).array, read_image(outputs[2]).array)
    assert later["network"] > 0


def test_a_failed_write_leaves_no_output_to_skip(tiny_ct, spleen_bundle, tmp_path, monkeypatch):
    import ctseg_gui.io.labels as labels_io

    def broken_write(labels, path, *, _real=labels_io._write_nifti):
        _real(labels.image, path, labels.array.astype(np.uint8), intent="label")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(labels_io, "write_label_map", broken_write)
    monkeypatch.setattr("ctseg_gui.io.write_label_map", broken_write)
    runner = BatchRunner(resolve_model(None, str(spleen_bundle)), device="cpu")
    output = tmp_path / "out" / "case.nii.gz"
    output.parent.mkdir()
    (result,) = runner.run(find_cases(tiny_ct).cases, [output])
    assert result.status == "failed" and "No space left on device" in result.message
    assert list(output.parent.iterdir()) == []  # no partial file, nothing a rerun would skip


def test_single_ct_timings_and_usage_errors(tiny_ct, spleen_bundle, tmp_path, capsys):
    timings = tmp_path / "single.csv"
    out = tmp_path / "one.nii.gz"
    code = main(
        ["segment", str(tiny_ct), "--bundle", str(spleen_bundle), "-o", str(out), "-q"]
        + ["--timings", str(timings)]
    )
    assert code == 0 and out.is_file()
    rows = list(csv.reader(timings.open()))
    assert rows[0] == list(CSV_COLUMNS) and [r[0] for r in rows[1:]] == ["tiny"]
    assert "network" in capsys.readouterr().out

    folder = tmp_path / "cts"
    folder.mkdir()
    shutil.copy(tiny_ct, folder / "x.nii.gz")
    assert main(["segment", str(folder), "-o", str(tmp_path / "o.nii.gz")]) == 1
    assert "-o must name a folder" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_bundle_that_cannot_load_stops_the_batch(ct_folder, spleen_bundle, tmp_path, capsys):
    broken = tmp_path / "broken_bundle"
    shutil.copytree(spleen_bundle, broken)
    (broken / "models" / "model.pt").write_bytes(b"truncated")
    code = main(["segment", str(ct_folder), "--bundle", str(broken), "-o", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 1 and "model.pt" in captured.err
    assert "b_case" not in captured.out  # not tried case after case with the same failure


def test_case_bar_shows_cases_done_and_an_eta():
    import io

    from ctseg_gui.commands.segment import CaseBar
    from ctseg_gui.inference.batch import CaseResult
    from ctseg_gui.io.cases import Case

    now = [100.0]
    stream = io.StringIO()
    bar = CaseBar(3, stream=stream, width=10, clock=lambda: now[0])
    first, second = Case("ct_a", None), Case("ct_b", None)
    bar(0, first, "reading", 0.0)
    now[0] += 20.0
    bar(0, first, "inference", 0.5)
    assert "1/3 ct_a" in stream.getvalue() and "ETA --" in stream.getvalue()
    assert "[##" in stream.getvalue().rsplit("\r", 1)[-1]  # half a network pass of case 1 of 3
    now[0] += 10.0
    bar.case_done(CaseResult(first, "done"))  # 30 s for the first case
    bar(1, second, "reading", 0.0)
    now[0] += 6.0
    bar(1, second, "inference", 0.2)
    line = stream.getvalue().rsplit("\r", 1)[-1]
    # two cases left at 30 s each, 6 s of the second already spent
    assert "2/3 ct_b" in line and "elapsed 0:36" in line and "ETA 0:54" in line
    bar.clear()
    assert stream.getvalue().endswith("\r\033[K")
