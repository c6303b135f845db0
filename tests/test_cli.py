"""The ``ctseg`` command as a user runs it: exit codes, one-line errors, no stray output."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def ctseg(*args):
    return subprocess.run(
        [sys.executable, "-m", "ctseg_gui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from ctseg_gui.cli import build_parser; build_parser().format_help(); "
        "heavy = [m for m in ('torch', 'monai', 'vtk', 'vtkmodules', 'PySide6', 'SimpleITK') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
    assert ctseg("--help").returncode == 0


def test_info_json_for_nifti(abdomen_ct):
    result = ctseg("info", abdomen_ct, "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["size"] == [122, 101, 112]
    assert facts["spacing_mm"] == [3.0, 3.0, 3.0]
    assert facts["orientation"] == "RAS"
    assert facts["hu_range"] == [-1207.0, 3382.0]
    assert facts["modality"].startswith("unknown (CT-like")
    assert result.stderr == ""


def test_info_lists_dicom_series(dicom_series):
    result = ctseg("info", dicom_series, "--json")
    assert result.returncode == 0, result.stderr
    (series,) = json.loads(result.stdout)["series"]
    assert series["modality"] == "CT" and series["slices"] == 20
    assert series["dimensions"] == [512, 512, 20]
    assert result.stderr == ""
    text = ctseg("info", dicom_series)
    assert "CT Body 3.0" in text.stdout and "20 slices" in text.stdout


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_convert_dicom(dicom_series, tmp_path, suffix):
    out = tmp_path / f"ct{suffix}"
    result = ctseg("convert", dicom_series, out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    facts = json.loads(ctseg("info", out, "--json").stdout)
    assert facts["size"] == [512, 512, 20] and facts["orientation"] == "LPS"


def _bad_inputs(tmp_path, abdomen_ct, dicom_series):
    empty = tmp_path / "empty"
    empty.mkdir()
    text_dir = tmp_path / "text"
    text_dir.mkdir()
    (text_dir / "a.txt").write_text("x")
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(abdomen_ct.read_bytes()[:500000])
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"\x00" * 1000)
    gap = tmp_path / "gap"
    gap.mkdir()
    files = sorted(dicom_series.iterdir())
    import pydicom

    by_z = sorted(files, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    for path in by_z[:9] + by_z[10:]:
        (gap / path.name).write_bytes(path.read_bytes())
    return {
        "missing": (tmp_path / "nope.nii.gz", "does not exist"),
        "empty": (empty, "empty"),
        "text": (text_dir, "no DICOM image series"),
        "truncated": (truncated, "truncated"),
        "corrupt": (corrupt, "NIfTI"),
        "gap": (gap, "missing slice"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "corrupt", "gap"])
def test_bad_input_one_line_no_traceback(case, tmp_path, abdomen_ct, dicom_series):
    path, message = _bad_inputs(tmp_path, abdomen_ct, dicom_series)[case]
    result = ctseg("convert", path, tmp_path / "out.nii.gz")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ctseg: error: ") and str(path) in lines[0]
    assert message in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "out.nii.gz").exists()
    debug = ctseg("--debug", "convert", path, tmp_path / "out.nii.gz")
    assert "Traceback" in debug.stderr


def test_convert_keeps_lps_nifti_affine(abdomen_ct, tmp_path):
    image = nib.load(abdomen_ct)
    lps = image.as_reoriented(np.array([[0, -1], [1, -1], [2, 1]]))
    source = tmp_path / "lps.nii.gz"
    nib.save(lps, source)
    out = tmp_path / "out.nii.gz"
    assert ctseg("convert", source, out).returncode == 0
    np.testing.assert_allclose(nib.load(out).affine, lps.affine, atol=1e-4)


@pytest.mark.parametrize("exists", [True, False])
def test_quick_exit_after_torch_keeps_output_exit_code_and_exit_handlers(
    abdomen_ct, tmp_path, exists
):
    image = abdomen_ct if exists else tmp_path / "missing.nii.gz"
    marker = tmp_path / "handler.txt"
    code = (
        "import atexit, sys, tempfile, torch\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "folder = tempfile.TemporaryDirectory()\n"  # removed by its weakref finalizer at exit
        f"open({str(marker)!r} + '.dir', 'w').write(folder.name)\n"
        f"sys.argv = ['ctseg', 'info', {str(image)!r}, '--json']\n"
        "from ctseg_gui.cli import entry\n"
        "entry()\n"
        "print('not reached')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == (0 if exists else 1), result.stderr
    assert "not reached" not in result.stdout
    if exists:
        assert json.loads(result.stdout)["size"] == [122, 101, 112]  # flushed before the exit
    else:
        assert result.stderr.startswith("ctseg: error:") and "missing.nii.gz" in result.stderr
    assert marker.read_text() == "ran"
    assert not Path(Path(str(marker) + ".dir").read_text()).exists()
