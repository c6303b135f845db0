"""Parity with MONAI's own workflow when the CT's grid is not the network's.

Today's parity tests (test_inference_parity.py) feed the 3 mm CT to networks of 3 mm or an exact
half of it. Here the real CT is resampled in the test: to 1.5 mm through the whole-body lowres
(3 mm) network, to 0.8 x 0.8 x 1.25 mm through the spleen network (1.5 x 1.5 x 2 mm, no integer
factor), and stored LPS (the voxel axes running right-to-left and anterior-to-posterior, as
DICOM-derived files are). The whole-body network's output layer is fitted to the CT's tissue
classes (fitted_weights.fit_head_state_dict; cached after the first run), so its class margins
are real and a grid slip shows as lost Dice rather than hiding in near-ties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundles import build_spleen_bundle, build_wholebody_bundle
from test_inference_parity import dice_per_class, monai_run

from ctseg_gui.cli import main
from ctseg_gui.core.volume import Volume
from ctseg_gui.io import read_image, write_image


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


def resampled(source: Path, target: Path, spacing, keep=None) -> Path:
    """``source`` linearly resampled to ``spacing`` (mm) over the same extent, int16.

    ``keep`` (voxels per axis, i j k) crops the source's centre first, to bound the test's size.
    """
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    if keep is not None:
        lo = [(n - k) // 2 for n, k in zip(image.GetSize(), keep, strict=True)]
        image = image[lo[0] : lo[0] + keep[0], lo[1] : lo[1] + keep[1], lo[2] : lo[2] + keep[2]]
    extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    size = [int(round(e / s)) for e, s in zip(extent, spacing, strict=True)]
    origin = image.TransformContinuousIndexToPhysicalPoint(
        [-0.5 + s / (2 * o) for s, o in zip(spacing, image.GetSpacing(), strict=True)]
    )
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, origin, list(spacing),
                        image.GetDirection(), -1024, sitk.sitkInt16)  # fmt: skip
    sitk.WriteImage(out, str(target))
    return target


def stored_lps(source: Path, target: Path) -> Path:
    """The same CT in the same place, its i and j axes reversed (an identity LPS direction)."""
    ct = read_image(source)
    assert np.allclose(np.diag(ct.direction), [-1, -1, 1])  # the source is stored RAS
    i, j, _ = ct.size
    flipped = np.ascontiguousarray(ct.array[:, ::-1, ::-1])
    origin = ct.index_to_world((i - 1, j - 1, 0))
    write_image(Volume(flipped, ct.spacing, origin, np.eye(3), dict(ct.metadata)), target)
    return target


def ours_and_monai(bundle, image, tmp_path, variant=None):
    out = tmp_path / "ours.nii.gz"
    args = ["segment", str(image), "-o", str(out), "--bundle", str(bundle), "-q"]
    extra = []
    if variant is not None:
        args += ["--variant", variant]
        extra = ["--displayable_configs#highres", str(variant == "highres")]
    assert main([*args, "--backend", "torch"]) == 0
    theirs = monai_run(bundle, image, tmp_path / "monai", *extra)
    ours = read_image(out)
    assert ours.same_grid(read_image(image))
    return ours.array.astype(np.int64), theirs


@pytest.mark.xfail(
    strict=True,
    reason="found by this test, not fixed: ours vs MONAI's workflow gives mean Dice 0.82 when a "
    "1.5 mm CT goes through the 3 mm network. The network-grid images agree (mean |diff| 0.0013; "
    "max 0.37 at a few voxels); every odd input voxel lies exactly half-way between two network "
    "voxels, and MONAI's nearest resampling breaks such ties by float32 rounding (half up on one "
    "axis, half down on the others in a probe) while ours rounds half to even. Replaying MONAI's "
    "tie choices per axis did not close the gap (0.77), so the cause is not established yet",
)
def test_wholebody_lowres_on_a_finer_ct(tmp_path, small_ct):
    image = resampled(small_ct, tmp_path / "ct_1p5mm.nii.gz", (1.5, 1.5, 1.5))
    bundle = build_wholebody_bundle(tmp_path / "wholeBody_ct_segmentation", fitted_head=True)
    ours, theirs = ours_and_monai(bundle, image, tmp_path, "lowres")
    scores = dice_per_class(ours, theirs)
    assert len(scores) >= 4, np.bincount(theirs.ravel())  # the tissue classes, not background
    assert float(np.mean(list(scores.values()))) >= 0.99, scores


@pytest.mark.parametrize("grid", ["0.8mm", "lps"])
def test_spleen_on_other_grids(tmp_path, small_ct, grid):
    if grid == "lps":
        image = stored_lps(small_ct, tmp_path / "ct_lps.nii.gz")
    else:
        # 5.7 M voxels: the centre 80 x 70 voxels of each slice (24 x 21 cm), all 30 slices
        image = resampled(small_ct, tmp_path / "ct_0p8mm.nii.gz", (0.8, 0.8, 1.25), (80, 70, 30))
    bundle = build_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    ours, theirs = ours_and_monai(bundle, image, tmp_path)
    assert np.bincount(theirs.ravel(), minlength=2).min() > 5000
    scores = dice_per_class(ours, theirs)
    assert set(scores) == {0, 1}
    assert min(scores.values()) >= 0.99, scores
