"""``ctseg segment`` against MONAI's own bundle workflow on the real abdomen CT.

Both run the same bundle folder (model-zoo layout, configs written by tests/bundles.py) with the
same fixed-seed weights; MONAI's output comes from ``python -m monai.bundle run``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bundles import build_spleen_bundle, build_wholebody_bundle

from ctseg_gui.cli import main
from ctseg_gui.io import read_image


def monai_run(bundle: Path, image: Path, out: Path, *extra: str) -> np.ndarray:
    """MONAI's own workflow; returns its label array ([k, j, i])."""
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(bundle / "configs" / "inference.json"),
        "--bundle_root",
        str(bundle),
        "--datalist",
        f"['{image}']",
        "--output_dir",
        str(out),
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (written,) = out.rglob("*.nii.gz")
    return np.rint(read_image(written).array).astype(np.int64)


def dice_per_class(ours: np.ndarray, theirs: np.ndarray, min_voxels: int = 100) -> dict[int, float]:
    scores = {}
    for value in np.unique(theirs):
        n = int((theirs == value).sum())
        if n >= min_voxels:
            a, b = ours == value, theirs == value
            scores[int(value)] = 2 * float((a & b).sum()) / float(a.sum() + b.sum())
    return scores


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


def test_spleen_bundle_matches_monai_workflow(tmp_path, small_ct, capsys):
    bundle = build_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    theirs = monai_run(bundle, small_ct, tmp_path / "monai")
    out = tmp_path / "ours.nii.gz"
    assert main(["segment", str(small_ct), "-o", str(out), "--bundle", str(bundle)]) == 0
    assert "[" in capsys.readouterr().err  # the progress bar went to stderr
    ours_volume = read_image(out)
    image = read_image(small_ct)
    assert ours_volume.same_grid(image)
    ours = ours_volume.array.astype(np.int64)
    # non-trivial: both classes hold thousands of voxels
    counts = np.bincount(theirs.ravel(), minlength=2)
    assert counts.min() > 5000, counts
    scores = dice_per_class(ours, theirs)
    assert set(scores) == {0, 1}
    assert min(scores.values()) >= 0.99, scores
    assert Path(str(out).replace(".nii.gz", ".labels.json")).is_file()


def test_wholebody_lowres_matches_monai_workflow(tmp_path, abdomen_ct):
    # The whole real abdomen CT (122 x 101 x 112 at 3 mm): 8 windows of the 105-class SegResNet
    # for each workflow, about a minute each on 2 CPU cores.
    image = abdomen_ct
    bundle = build_wholebody_bundle(tmp_path / "wholeBody_ct_segmentation")
    theirs = monai_run(bundle, image, tmp_path / "monai", "--displayable_configs#highres", "False")
    out = tmp_path / "ours.nii.gz"
    args = ["segment", str(image), "-o", str(out), "--bundle", str(bundle), "--variant", "lowres"]
    assert main([*args, "-q"]) == 0
    ours = read_image(out).array.astype(np.int64)
    scores = dice_per_class(ours, theirs)
    assert len(scores) >= 2, np.bincount(theirs.ravel())  # several classes present
    assert float(np.mean(list(scores.values()))) >= 0.99, scores
    assert min(scores.values()) >= 0.99, scores
