"""Our fast preprocessing path against the bundle's own MONAI transform chain."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bundles import build_spleen_bundle, spleen_config, wholebody_config

from ctseg_gui.core.volume import Volume
from ctseg_gui.inference import resolve_model
from ctseg_gui.inference.bundle import load_plan
from ctseg_gui.inference.preprocess import plan_steps, run_steps
from ctseg_gui.inference.resample import NotSeparable, axis_map, resample
from ctseg_gui.io import read_image, write_image


def _bundle_with(tmp_path, config: dict):
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    return bundle


def _compare(bundle, image_path, variant=None, exact_fraction=1.0):
    plan = load_plan(resolve_model(bundle=bundle, variant=variant))
    steps = plan_steps(plan.transforms, plan.image_key)
    assert steps is not None, "the fast path should handle this chain"
    volume = read_image(image_path)
    ours = run_steps(volume.array.transpose(2, 1, 0), volume.affine_ras, steps, torch.device("cpu"))
    theirs = plan.preprocessing({plan.image_key: str(image_path)})[plan.image_key]
    assert tuple(ours.image.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.affine, theirs.affine.numpy(), atol=1e-5)
    close = np.isclose(ours.image.numpy(), theirs.numpy(), rtol=1e-5, atol=2e-5)
    assert close.mean() >= exact_fraction, f"only {close.mean():.5f} of voxels agree"
    return ours


def test_spleen_chain_matches_monai(tmp_path, small_ct):
    prepared = _compare(_bundle_with(tmp_path, spleen_config()), small_ct)
    assert prepared.image.shape[1:] != (122, 101, 30)  # really resampled to 1.5 x 1.5 x 2 mm


@pytest.mark.parametrize("variant", ["lowres", "highres"])
def test_wholebody_chain_matches_monai(tmp_path, small_ct, variant):
    # At 1.5 mm, MONAI's grid_sample leaves about 0.1% of voxels that interpolate to exactly 0 HU
    # (between -1 and +1, say) at +-1e-13 instead, so NormalizeIntensity(nonzero=True) counts
    # them as foreground; our exact weights give 0. Everything else agrees to 1e-5.
    _compare(_bundle_with(tmp_path, wholebody_config()), small_ct, variant, exact_fraction=0.995)


def test_lps_input_with_foreground_crop_matches_monai(tmp_path, small_ct):
    # Flip the file to LPS order so Orientationd has real work; crop the foreground after scaling.
    volume = read_image(small_ct)
    flipped = Volume(
        volume.array[:, ::-1, ::-1].copy(),
        volume.spacing,
        volume.index_to_world((volume.size[0] - 1, volume.size[1] - 1, 0)),
        volume.direction @ np.diag([-1.0, -1.0, 1.0]),
    )
    path = write_image(flipped, tmp_path / "lps.nii.gz")
    config = spleen_config()
    config["preprocessing"]["transforms"].insert(
        5, {"_target_": "CropForegroundd", "keys": "image", "source_key": "image", "margin": 3}
    )
    prepared = _compare(_bundle_with(tmp_path, config), path)
    assert prepared.full_shape is not None and prepared.image.shape[1:] != prepared.full_shape


def test_unknown_transform_means_fallback(tmp_path):
    config = spleen_config()
    config["preprocessing"]["transforms"].insert(
        4, {"_target_": "ThresholdIntensityd", "keys": "image", "threshold": 500, "above": False}
    )
    plan = load_plan(resolve_model(bundle=_bundle_with(tmp_path, config)))
    assert plan_steps(plan.transforms, plan.image_key) is None


def test_separable_resample_is_trilinear():
    data = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(1, 4, 5, 6)
    transform = np.array([[0, 0.5, 0, 0.25], [1, 0, 0, 0], [0, 0, -1, 5], [0, 0, 0, 1.0]])
    out = resample(data, transform, (5, 4, 6))
    # a linear ramp stays exactly linear under trilinear interpolation
    t = np.stack(np.meshgrid(np.arange(5), np.arange(4), np.arange(6), indexing="ij"), -1)
    src = t @ transform[:3, :3].T + transform[:3, 3]
    expected = src[..., 0] * 30 + src[..., 1] * 6 + src[..., 2]
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-4)
    with pytest.raises(NotSeparable):
        axis_map(np.array([[0.7, 0.7, 0, 0], [-0.7, 0.7, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))


def test_spleen_bundle_helper_writes_model_zoo_layout(tmp_path):
    bundle = build_spleen_bundle(tmp_path / "b")
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    for key in (
        "preprocessing",
        "dataset",
        "inferer",
        "postprocessing",
        "evaluator",
        "initialize",
        "run",
    ):
        assert key in config
    assert config["network_def"]["channels"] == [16, 32, 64, 128, 256]
    assert (bundle / "models" / "model.pt").stat().st_size > 1_000_000
