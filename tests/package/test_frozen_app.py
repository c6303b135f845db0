"""The frozen app in ``dist/ctseg-gui`` works on its own: CLI, GUI, resources, user folders.

Every run uses a clean environment (no virtual environment on PATH, no PYTHONPATH) and a working
directory outside the repository, as a user's double-click or terminal would.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from _frozen_helpers import ROOT, bundle_rules, package_build, run_app, run_source

SAMPLE = ROOT / "resources" / "sample" / "abdomen_3mm.nii.gz"


@pytest.fixture(scope="module")
def bundle_info(frozen_app, tmp_path_factory) -> dict:
    result = run_app(frozen_app, "--bundle-info", cwd=tmp_path_factory.mktemp("info"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_resources_and_models_come_from_inside_the_bundle(frozen_app, bundle_info):
    bundle = Path(bundle_info["bundle_dir"])
    assert bundle_info["frozen"] is True
    assert bundle.is_relative_to(frozen_app.parent)
    for key in ("resources", "models", "sample_ct"):
        path = Path(bundle_info[key])
        assert path.is_relative_to(bundle), f"{key} found outside the bundle: {path}"
        assert path.exists()
    # The sample CT in the bundle is the one in the repository, byte for byte.
    assert Path(bundle_info["sample_ct"]).read_bytes() == SAMPLE.read_bytes()


def test_imports_nothing_from_the_source_tree_or_the_venv(bundle_info):
    dist = ROOT / "dist"
    outside = [
        entry
        for entry in bundle_info["sys_path"]
        if Path(entry).is_relative_to(ROOT) and not Path(entry).is_relative_to(dist)
    ]
    assert outside == []


def test_user_folders_are_the_users_own(bundle_info):
    home = Path(os.environ["HOME"])
    for key in ("user_config_dir", "user_data_dir", "user_cache_dir"):
        assert Path(bundle_info[key]).is_relative_to(home)
        assert not Path(bundle_info[key]).is_relative_to(bundle_info["bundle_dir"])


def test_start_up_without_a_command_loads_no_heavy_library(bundle_info):
    assert bundle_info["heavy_modules_loaded"] == []


def test_info_answers_like_the_source_install(frozen_app, tmp_path):
    frozen = run_app(frozen_app, "info", str(SAMPLE), "--json", cwd=tmp_path)
    source = run_source("ctseg", "info", str(SAMPLE), "--json", cwd=tmp_path)
    assert frozen.returncode == 0, frozen.stderr
    assert source.returncode == 0, source.stderr
    assert json.loads(frozen.stdout) == json.loads(source.stdout)


def test_convert_decodes_jpeg2000_dicom_like_the_source_install(frozen_app, tmp_path, dicom_series):
    from ctseg_gui.io import read_image

    frozen = run_app(frozen_app, "convert", str(dicom_series), "frozen.nrrd", cwd=tmp_path)
    source = run_source("ctseg", "convert", str(dicom_series), "source.nrrd", cwd=tmp_path)
    assert frozen.returncode == 0, frozen.stderr
    assert source.returncode == 0, source.stderr
    ours, theirs = read_image(tmp_path / "frozen.nrrd"), read_image(tmp_path / "source.nrrd")
    assert ours.array.shape == (20, 512, 512)
    np.testing.assert_array_equal(ours.array, theirs.array)
    np.testing.assert_allclose(ours.affine_lps, theirs.affine_lps)


def test_bad_input_gets_one_line_naming_the_file(frozen_app, tmp_path):
    missing = tmp_path / "no_such_scan.nii.gz"
    result = run_app(frozen_app, "info", str(missing), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctseg: error:")
    assert "no_such_scan.nii.gz" in lines[0]


needs_display = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="needs an X display: run under xvfb-run"
)


@needs_display
def test_screenshot_of_the_sample_ct(frozen_app, bundle_info, tmp_path):
    from PIL import Image

    png = tmp_path / "window.png"
    result = run_app(
        frozen_app, bundle_info["sample_ct"], "--screenshot", str(png), cwd=tmp_path, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 0
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 200
    # A blank or single-colour window means nothing was drawn.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_bundle_leaves_out_what_the_app_never_loads(frozen_app):
    internal = frozen_app.parent / "_internal"
    assert internal.is_dir()
    shipped = [
        path.relative_to(internal).as_posix() for path in internal.rglob("*") if path.is_file()
    ]
    unwanted = [p for p in shipped if bundle_rules.drop_reason(p) is not None]
    assert unwanted == []
    tops = {p.split("/")[0] for p in shipped}
    assert not tops & {"itk", "matplotlib", "tkinter", "pytest", "PyInstaller", "nvidia"}
    assert not [p for p in shipped if "WebEngine" in p or "libQt6Quick" in p or "libQt6Qml" in p]


def test_unpacked_size_stays_within_the_goal(frozen_app):
    # Goal of issue 6 for the CPU build: at most 1.2 GB unpacked (decimal, the stricter reading).
    assert package_build.folder_size(frozen_app.parent) <= 1.2e9


def test_every_vtk_module_our_code_imports_is_bundled(frozen_app):
    text = "\n".join(p.read_text() for p in (ROOT / "ctseg_gui").rglob("*.py"))
    used = set(re.findall(r"vtkmodules\.(vtk\w+)", text))
    used |= {
        name
        for names in re.findall(r"from vtkmodules import ([\w, ]+)", text)
        for name in re.split(r"[,\s]+", names)
        if name.startswith("vtk")
    }
    shipped = {
        p.name.split(".")[0] for p in (frozen_app.parent / "_internal/vtkmodules").glob("vtk*")
    }
    assert used <= shipped, used - shipped


@needs_display
def test_gui_compute_job_runs_in_the_worker_child_process(frozen_app, bundle_info, tmp_path):
    out = tmp_path / "self_test.json"
    result = run_app(
        frozen_app,
        "--self-test-compute",
        str(out),
        bundle_info["sample_ct"],
        "ct-tissues",
        cwd=tmp_path,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr + (out.read_text() if out.exists() else "")
    report = json.loads(out.read_text())
    worker = report["worker"]
    assert report["worker_pid"] != report["gui_pid"]
    assert worker["ppid"] == report["gui_pid"]
    # Started through the app's own executable with a subcommand, not `python -m`.
    assert Path(worker["cmdline"][0]).resolve() == frozen_app.resolve()
    assert worker["cmdline"][1] == "worker"
    assert "-m" not in worker["cmdline"] and "-c" not in worker["cmdline"]
    # The window never loads torch; only the worker may.
    assert report["torch_in_gui_process"] is False
    labels = {int(value): count for value, count in report["labels"].items()}
    assert set(labels) == {0, 1, 2, 3, 4, 5}  # background + body, air, fat, soft tissue, bone
    assert labels[5] > 10_000  # bone of a whole abdomen at 3 mm


def _same_label_maps(ours: Path, theirs: Path) -> None:
    import nibabel as nib

    from ctseg_gui.io.labels import sidecar_path

    a, b = nib.load(ours), nib.load(theirs)
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    np.testing.assert_array_equal(a.affine, b.affine)
    assert a.get_data_dtype() == b.get_data_dtype()
    assert json.loads(sidecar_path(ours).read_text()) == json.loads(
        sidecar_path(theirs).read_text()
    )


def test_segment_with_the_built_in_model_matches_the_source_install(
    frozen_app, bundle_info, tmp_path
):
    sample = bundle_info["sample_ct"]
    frozen = run_app(frozen_app, "segment", sample, "-o", "frozen.nii.gz", "-q", cwd=tmp_path)
    source = run_source("ctseg", "segment", sample, "-o", "source.nii.gz", "-q", cwd=tmp_path)
    assert frozen.returncode == 0, frozen.stderr
    assert source.returncode == 0, source.stderr
    _same_label_maps(tmp_path / "frozen.nii.gz", tmp_path / "source.nii.gz")


def test_segment_with_a_monai_bundle_runs_torch_in_the_frozen_app(frozen_app, tmp_path, small_ct):
    """torch + monai inside the bundle: a model-zoo-format UNet bundle gives the source's labels."""
    from bundles import build_spleen_bundle

    bundle = build_spleen_bundle(tmp_path / "bundles")
    args = ("segment", str(small_ct), "--bundle", str(bundle), "--device", "cpu", "-q", "-o")
    frozen = run_app(frozen_app, *args, "frozen.nii.gz", cwd=tmp_path, timeout=600)
    source = run_source("ctseg", *args, "source.nii.gz", cwd=tmp_path, timeout=600)
    assert frozen.returncode == 0, frozen.stderr
    assert source.returncode == 0, source.stderr
    _same_label_maps(tmp_path / "frozen.nii.gz", tmp_path / "source.nii.gz")
