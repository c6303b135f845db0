"""Precision policy of the network pass, the fast argmax, and ``--precision reduced`` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bundles import build_spleen_bundle

from ctseg_gui.cli import main
from ctseg_gui.inference.precision import autocast_dtype
from ctseg_gui.inference.sliding import channel_argmax
from ctseg_gui.io import read_image

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_follows_the_bundle_workflow():
    # MONAI's evaluator autocasts on CUDA only: auto matches it on both devices
    assert autocast_dtype(CPU, "auto", bundle_amp=True) is None
    assert autocast_dtype(CUDA, "auto", bundle_amp=True) == torch.float16
    assert autocast_dtype(CUDA, "auto", bundle_amp=False) is None
    assert autocast_dtype(CPU, "reduced") == torch.bfloat16
    assert autocast_dtype(CUDA, "reduced", bundle_amp=False) == torch.float16
    assert autocast_dtype(CUDA, "fp32", bundle_amp=True) is None
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype(CPU, "half")


def test_channel_argmax_matches_argmax_including_ties():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (7, 20, 30, 40), generator=generator).float()  # many ties
    assert torch.equal(channel_argmax(scores), scores.argmax(0))
    # the channel-fastest layout the stitching uses
    channel_last = scores.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)
    assert torch.equal(channel_argmax(channel_last), scores.argmax(0))


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


def test_reduced_precision_segments_close_to_float32(tmp_path, small_ct):
    bundle = build_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    outputs = {}
    for precision in ("fp32", "reduced"):
        out = tmp_path / f"{precision}.nii.gz"
        args = ["segment", str(small_ct), "-o", str(out), "--bundle", str(bundle)]
        assert main([*args, "--precision", precision, "-q"]) == 0
        outputs[precision] = read_image(out)
    image = read_image(small_ct)
    assert outputs["reduced"].same_grid(image)
    exact, fast = (outputs[p].array.astype(bool) for p in ("fp32", "reduced"))
    assert exact.sum() > 5000  # both classes are present in earnest
    dice = 2.0 * np.sum(exact & fast) / (exact.sum() + fast.sum())
    # bfloat16 moves only voxels whose two class scores are nearly tied (fixed-seed weights
    # have many; 0.998 measured)
    assert dice >= 0.98, dice
    assert not np.array_equal(exact, fast)  # the fast mode really ran in bfloat16
