"""Deepgrow-format click refinement: same mask as MONAI's own deepgrow transforms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bundles import build_deepgrow_bundle

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


def test_bundle_through_refine_with_model_and_cli(ct, small_ct, tmp_path, capsys):
    network = build_deepgrow_bundle(tmp_path / "bundle", ROI3)
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


@pytest.fixture
def lps_image(ct):
    from ctseg_gui.core.volume import Volume

    flipped = np.ascontiguousarray(ct.array[:, ::-1, ::-1])
    i, j, _ = ct.size
    origin = ct.index_to_world((i - 1, j - 1, 0))
    return Volume(flipped, ct.spacing, origin, np.eye(3), dict(ct.metadata))


def _deepedit_bundle(root, spatial_size):
    """A bundle in the spleen_deepedit_annotation layout (our own config, small DynUNet)."""
    import torch
    from monai.bundle import ConfigParser

    config = {
        "label_names": {"spleen": 1, "background": 0},
        "spatial_size": list(spatial_size),
        "number_intensity_ch": 1,
        "network_def": {
            "_target_": "DynUNet",
            "spatial_dims": 3,
            "in_channels": "$len(@label_names) + @number_intensity_ch",
            "out_channels": "$len(@label_names)",
            "kernel_size": [3, 3, 3],
            "strides": [1, 2, 2],
            "upsample_kernel_size": [2, 2],
            "filters": [8, 16, 16],
            "norm_name": "instance",
            "res_block": True,
        },
        "preprocessing_transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {
                "_target_": "ScaleIntensityRanged",
                "keys": "image",
                "a_min": -175,
                "a_max": 250,
                "b_min": 0.0,
                "b_max": 1.0,
                "clip": True,
            },
        ],
        "deepedit_transforms": [
            {
                "_target_": "Resized",
                "keys": "image",
                "spatial_size": "@spatial_size",
                "mode": "area",
            },
            {"_target_": "AddGuidanceSignalDeepEditd", "keys": "image", "guidance": "guidance"},
        ],
        "preprocessing": {
            "_target_": "Compose",
            "transforms": "$@preprocessing_transforms + @deepedit_transforms",
        },
    }
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    parser = ConfigParser(config)
    torch.manual_seed(3)
    network = parser.get_parsed_content("network_def")
    torch.save({"model": network.state_dict()}, root / "models" / "model.pt")
    return network.eval()


def test_deepedit_bundle_on_lps_image_matches_monai_transforms(tmp_path, lps_image):
    """Orientation to RAS, intensity scaling, resize, per-label guidance: as MONAI does it."""
    import torch
    from monai.apps.deepedit.transforms import AddGuidanceSignalDeepEditd
    from monai.data import MetaTensor
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        Orientationd,
        Resize,
        Resized,
        ScaleIntensityRanged,
    )

    from ctseg_gui.interactive.deep import load_interactive_bundle

    image = lps_image
    assert image.orientation_code == "LPS"
    network = _deepedit_bundle(tmp_path / "deepedit", (32, 48, 48))
    loaded, config = load_interactive_bundle(tmp_path / "deepedit")
    assert config.mode == "deepedit" and config.ras and config.roi_size == (32, 48, 48)
    assert config.label_order == ("positive", "negative") and config.sigma == 3.0
    clicks = [Click((40, 50, 15), True), Click((70, 60, 12), True), Click((30, 40, 20), False)]
    refiner = DeepgrowRefiner(image, loaded, config)
    mask = np.zeros(image.array.shape, bool)
    region, values = refiner.refine(mask, clicks)
    ours = mask.copy()
    ours[region] = values

    # MONAI: the image as LoadImaged gives it ([i, j, k] with its RAS affine), then the bundle's
    # transforms; clicks in RAS array coordinates worked out independently of our code.
    ni, nj, _ = image.size
    array = image.array.transpose(2, 1, 0).astype(np.float32)
    data = {"image": MetaTensor(array, affine=torch.as_tensor(image.affine_ras))}
    pre = Compose(
        [
            EnsureChannelFirstd(keys="image", channel_dim="no_channel"),
            Orientationd(keys="image", axcodes="RAS"),
            ScaleIntensityRanged(
                keys="image", a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True
            ),
        ]
    )
    out = pre(data)
    ras_shape = out["image"].shape[1:]
    factor = np.divide((32, 48, 48), ras_shape)

    def ras(click):
        i, j, k = click.index
        return [ni - 1 - i, nj - 1 - j, k]  # LPS storage: i and j run opposite to R and A

    guidance = {
        name: np.multiply([ras(c) for c in clicks if c.positive == (name == "spleen")], factor)
        .astype(int)
        .tolist()
        for name in ("spleen", "background")
    }
    out = Resized(keys="image", spatial_size=(32, 48, 48), mode="area")(out)
    out["guidance"] = guidance
    out = AddGuidanceSignalDeepEditd(keys="image", guidance="guidance")(out)
    with torch.no_grad():
        logits = network(torch.as_tensor(np.asarray(out["image"]))[None].float())
    probabilities = torch.softmax(logits, dim=1)[0]
    back = np.asarray(Resize(tuple(ras_shape), mode="area")(probabilities))
    to_file = (slice(None, None, -1), slice(None, None, -1), slice(None))
    theirs = (np.argmax(back, axis=0) == 1)[to_file].transpose(2, 1, 0)  # the file's [k, j, i]
    p_spleen = back[1][to_file].transpose(2, 1, 0)
    assert ours.any() and (~ours).any()
    # Overlapping guidance blobs add up in another float order than MONAI's convolution; that
    # may flip only voxels where the two classes tie.
    mismatch = ours != theirs
    assert mismatch.sum() <= 1e-4 * mismatch.size
    assert np.all(np.abs(p_spleen[mismatch] - 0.5) < 1e-3)


def test_catalog_deepgrow_recipe_conventions():
    """The shipped Deepgrow 3D recipe: RAS, 1 mm, 128x192x192 crop, Deepgrow normalisation."""
    from ctseg_gui.interactive.deep import _conventions
    from ctseg_gui.resources import models_path

    manifest = json.loads((models_path() / "deepgrow_3d.json").read_text())
    config = _conventions(manifest["config"], None)
    assert config.mode == "deepgrow" and config.spatial_dims == 3
    assert config.ras and config.pixdim == (1.0, 1.0, 1.0)
    assert config.roi_size == (128, 192, 192)
    assert config.intensity == ("normalize", 208.0, 388.0) and config.sigma == 2.0


def test_model_grid_resampling_round_trip(lps_image):
    from ctseg_gui.interactive._model_grid import ModelGrid

    box = np.zeros(lps_image.array.shape, np.float32)
    box[5:20, 30:70, 10:50] = 1000.0  # a block asymmetric in every axis
    image = lps_image.with_array(box)
    grid = ModelGrid(image, ras=True, pixdim=(1.5, 1.5, 1.5))
    model = grid.model_array()
    assert model.shape == (244, 202, 60)  # RAS x, y, z at 1.5 mm
    region, back = grid.back(np.zeros(3, int), np.asarray(model.shape), model > 300)
    assert region == tuple(slice(0, n) for n in box.shape)
    # Sampled 1/4 voxel off centre, a corner keeps 0.75^3 of its value: above 300.
    assert np.array_equal(back, box > 500)  # resampled there and back: the same voxels
    k, j, i = 12, 40, 70
    x, y, z = grid.to_model((k, j, i))
    assert (x, y, z) == (2 * (121 - i) + 1, 2 * (100 - j) + 1, 2 * k + 1)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("dims", [3, 2])
def test_click_models_run_on_exported_backends(ct, backend, dims, tmp_path, monkeypatch):
    from ctseg_gui.inference.backends import is_installed

    if not is_installed(backend):
        pytest.skip(f"{backend} is not installed here")
    monkeypatch.setenv("CTSEG_CACHE_DIR", str(tmp_path / "cache"))
    network = build_test_deepgrow_network(spatial_dims=dims, seed=dims)
    roi = ROI3 if dims == 3 else (64, 64)
    clicks = [Click((60, 50, 15), True), Click((70, 45, 15), True), Click((40, 60, 15), False)]
    masks = {}
    for name in ("torch", backend):
        refiner = DeepgrowRefiner(ct, network, roi_size=roi, spatial_dims=dims, backend=name)
        mask = np.zeros(ct.array.shape, bool)
        region, values = refiner.refine(mask, clicks)
        mask[region] = values
        masks[name] = mask
        assert refiner._predictor.name == name  # the seam ran this backend
    assert masks["torch"].any() and (~masks["torch"]).any()
    assert int((masks[backend] != masks["torch"]).sum()) <= 2  # float32: a tie at most
