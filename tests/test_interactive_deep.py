"""Deepgrow-format click refinement: same mask as MONAI's own deepgrow transforms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctseg_gui.interactive.clicks import Click
from ctseg_gui.interactive.deep import (
    DeepgrowRefiner,
    build_test_deepgrow_network,
    refine_with_model,
)
from ctseg_gui.io import read_image

ROI3 = (24, 48, 48)


@pytest.fixture(scope="module")
def ct(small_ct):
    return read_image(small_ct)


def monai_pipeline_mask(array, network, pos, neg, roi, spatial_dims):
    """The mask MONAI's deepgrow transforms + the network give, pasted back on ``array``'s grid."""
    import torch
    from monai.apps.deepgrow.transforms import (
        AddGuidanceSignald,
        ResizeGuidanced,
        SpatialCropGuidanced,
    )
    from monai.transforms import Compose, NormalizeIntensityd, Resize, Resized

    data = {"image": array[None].astype(np.float32), "image_meta_dict": {}, "guidance": [pos, neg]}
    pre = Compose(
        [
            SpatialCropGuidanced(keys="image", guidance="guidance", spatial_size=list(roi)),
            Resized(keys="image", spatial_size=list(roi), mode="area"),
            ResizeGuidanced(guidance="guidance", ref_image="image"),
            NormalizeIntensityd(keys="image", subtrahend=208.0, divisor=388.0),
            AddGuidanceSignald(image="image", guidance="guidance"),
        ]
    )
    out = pre(data)
    inputs = torch.as_tensor(np.asarray(out["image"]))[None].float()
    with torch.no_grad():
        pred = (torch.sigmoid(network(inputs)) >= 0.5).float()[0]
    meta = out["image_meta_dict"]
    start, end = meta["foreground_start_coord"], meta["foreground_end_coord"]
    cropped = tuple(int(b - a) for a, b in zip(start, end, strict=True))
    back = np.asarray(Resize(cropped, mode="nearest")(pred))[0] > 0.5
    full = np.zeros(array.shape, bool)
    full[tuple(slice(int(a), int(b)) for a, b in zip(start, end, strict=True))] = back
    return full


def test_deepgrow_3d_matches_monai_transforms(ct):
    network = build_test_deepgrow_network(spatial_dims=3, seed=0)
    refiner = DeepgrowRefiner(ct, network, roi_size=ROI3, spatial_dims=3)
    clicks = [Click((60, 50, 15), True), Click((70, 45, 12), True), Click((40, 60, 18), False)]
    mask = np.zeros(ct.array.shape, bool)
    region, values = refiner.refine(mask, clicks)
    ours = mask.copy()
    ours[region] = values
    pos = [list(c.kji) for c in clicks if c.positive]
    neg = [list(c.kji) for c in clicks if not c.positive]
    theirs = monai_pipeline_mask(ct.array, network, pos, neg, ROI3, 3)
    assert ours.any() and (~ours).any()  # a real decision, not all or nothing
    assert np.array_equal(ours, theirs)


def test_deepgrow_2d_matches_monai_transforms(ct):
    network = build_test_deepgrow_network(spatial_dims=2, seed=1)
    refiner = DeepgrowRefiner(ct, network, roi_size=(64, 64), spatial_dims=2)
    clicks = [Click((60, 50, 10), True), Click((75, 40, 10), False)]
    mask = np.zeros(ct.array.shape, bool)
    region, values = refiner.refine(mask, clicks)
    assert region[0] == slice(10, 11)
    ours = mask.copy()
    ours[region] = values
    plane = ct.array[10]
    theirs = monai_pipeline_mask(plane, network, [[50, 60]], [[40, 75]], (64, 64), 2)
    assert np.array_equal(ours[10], theirs)
    assert not ours[:10].any() and not ours[11:].any()


def write_bundle(root, seed=0):
    import torch

    network = build_test_deepgrow_network(spatial_dims=3, seed=seed)
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    torch.save(network.state_dict(), root / "models" / "model.pt")
    config = {
        "deepgrow_spatial_dims": 3,
        "spatial_size": list(ROI3),
        "network_def": {
            "_target_": "BasicUNet",
            "spatial_dims": 3,
            "in_channels": 3,
            "out_channels": 1,
            "features": [8, 8, 16, 32, 64, 8],
        },
    }
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    return network


def test_bundle_through_refine_with_model_and_cli(ct, small_ct, tmp_path, capsys):
    network = write_bundle(tmp_path / "bundle")
    clicks = [Click((60, 50, 15), True)]
    mask = np.zeros(ct.array.shape, bool)
    region, values = refine_with_model(ct, mask, clicks, str(tmp_path / "bundle"))
    direct = DeepgrowRefiner(ct, network, roi_size=ROI3).refine(mask, clicks)
    assert region == direct[0] and np.array_equal(values, direct[1])

    from ctseg_gui.cli import main
    from ctseg_gui.core.labels import LabelMap
    from ctseg_gui.io import write_label_map

    labels = np.zeros(ct.array.shape, np.uint8)
    labels[10:20, 40:60, 50:70] = 1
    write_label_map(LabelMap(labels, ct), tmp_path / "ref.nii.gz")
    code = main(
        [
            "clicks-eval",
            str(small_ct),
            str(tmp_path / "ref.nii.gz"),
            "--label-value",
            "1",
            "--clicks",
            "2",
            "--bundle",
            str(tmp_path / "bundle"),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["dice"]) == 2


def test_damaged_bundle_is_one_line_error(ct, small_ct, tmp_path, capsys):
    (tmp_path / "bad" / "configs").mkdir(parents=True)
    from ctseg_gui.cli import main
    from ctseg_gui.core.labels import LabelMap
    from ctseg_gui.io import write_label_map

    labels = np.zeros(ct.array.shape, np.uint8)
    labels[10:20, 40:60, 50:70] = 1
    write_label_map(LabelMap(labels, ct), tmp_path / "ref.nii.gz")
    args = ["clicks-eval", str(small_ct), str(tmp_path / "ref.nii.gz"), "--label-value", "1"]
    code = main([*args, "--bundle", str(tmp_path / "bad")])
    assert code == 1
    assert "bad" in capsys.readouterr().err
