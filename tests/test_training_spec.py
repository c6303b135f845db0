"""Training specs and case lists: strict spec reading, datalists, MSD folders, grids, label maps."""

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from bundles import build_spleen_bundle
from training_data import spleen_slab_case, write_spec

from ctseg_gui.core.errors import CtsegError, CtsegWarning, GeometryMismatchError
from ctseg_gui.training.datasets import (
    add_case,
    check_cases,
    read_cases,
    split_cases,
    value_map,
)
from ctseg_gui.training.spec import KEYS, SpecError, load_spec


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return spleen_slab_case(tmp_path_factory.mktemp("slab"))


def test_spec_paths_are_relative_to_the_spec_file(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path / "spec.json",
            base_model="spleen_ct_segmentation",
            train=[{"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz"}],
            label_map={"1": 1, "6.0": 0},
            patch_size=48,
        )
    )
    assert spec.train[0]["image"] == str(tmp_path / "imagesTr" / "a.nii.gz")
    assert spec.run_dir == str(tmp_path / "spec-run")
    assert spec.patch_size == [48, 48, 48]
    assert spec.label_map == {"1": 1, "6": 0}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"learning_rate": 0.1}, "unknown key 'learning_rate'"),
        ({"max_iterations": "10"}, "'max_iterations' must be int"),
        ({"optimizer": "SGD"}, "'optimizer' must be one of Adam, AdamW, Novograd"),
        ({"train": [{"image": "x.nii.gz"}]}, "'train' entry 0 needs"),
        ({"patch_size": [8, 8, 8]}, "'patch_size' must be three sizes"),
    ],
)
def test_bad_spec_is_one_error_naming_the_file_and_key(tmp_path, values, message):
    spec = {"base_model": "m", "train": [{"image": "a", "label": "b"}], **values}
    path = write_spec(tmp_path / "spec.json", **spec)
    with pytest.raises(SpecError, match=message) as error:
        load_spec(path)
    assert str(path) in str(error.value)


def test_cli_reports_an_unknown_key_in_one_line(tmp_path):
    path = write_spec(tmp_path / "spec.json", base_model="m", train=[], epochs=3)
    result = subprocess.run(
        [sys.executable, "-m", "ctseg_gui.cli", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ctseg: error: {path}: unknown key 'epochs' in the spec (known keys: "
        + ", ".join(KEYS)
        + ")"
    ]


def test_template_uses_the_bundle_roi_and_its_train_config_optimiser(tmp_path, capsys):
    from ctseg_gui.cli import main

    bundle = build_spleen_bundle(tmp_path / "b", train_config=True)
    assert main(["train", "--template", str(bundle)]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["patch_size"] == [96, 96, 96]
    assert spec["optimizer"] == "Adam" and spec["lr"] == 1e-4
    assert spec["base_model"] == str(bundle)


def test_msd_folder_and_datalists_give_the_same_cases(tmp_path, case):
    for sub in ("imagesTr", "labelsTr"):
        (tmp_path / sub).mkdir()
    (tmp_path / "imagesTr" / "c1.nii.gz").symlink_to(case["image"])
    (tmp_path / "labelsTr" / "c1.nii.gz").symlink_to(case["label"])
    msd = read_cases(tmp_path)
    (tmp_path / "list.json").write_text(
        json.dumps({"validation": [{"image": "imagesTr/c1.nii.gz", "label": "labelsTr/c1.nii.gz"}]})
    )
    assert read_cases(tmp_path / "list.json") == msd
    assert msd == [
        {
            "image": str((tmp_path / "imagesTr" / "c1.nii.gz").resolve()),
            "label": str((tmp_path / "labelsTr" / "c1.nii.gz").resolve()),
        }
    ]
    (tmp_path / "labelsTr" / "c1.nii.gz").unlink()
    with pytest.raises(CtsegError, match="no label file for c1.nii.gz"):
        read_cases(tmp_path)


def test_grid_mismatch_names_the_label_file(tmp_path, case):
    label = sitk.ReadImage(case["label"])
    label.SetOrigin([o + 5.0 for o in label.GetOrigin()])
    moved = tmp_path / "moved.nii.gz"
    sitk.WriteImage(label, str(moved))
    with pytest.raises(GeometryMismatchError, match="label origin") as error:
        check_cases([{"image": case["image"], "label": str(moved)}])
    assert str(moved) in str(error.value)
    values, sizes = check_cases([case])
    assert {0, 1, 5} <= values  # background, spleen, liver in the slab
    assert sizes == [(64, 64, 32)]


def test_value_map_defaults_and_warns_about_unmapped_values():
    classes = {0: "background", 1: "spleen"}
    with pytest.warns(CtsegWarning, match=r"label values 5, 6 \(2 in all\)"):
        assert value_map({0, 1, 5, 6}, classes, None) == {0: 0, 1: 1, 5: 0, 6: 0}
    with pytest.warns(CtsegWarning, match="label values 1"):
        assert value_map({0, 1, 5}, classes, {"5": 1}) == {0: 0, 1: 0, 5: 1}
    with pytest.raises(CtsegError, match="sends 5 to class 3"):
        value_map({0, 5}, classes, {"5": 3})


def test_split_is_seeded_and_keeps_both_sides():
    cases = [{"image": str(i), "label": str(i)} for i in range(10)]
    train, val = split_cases(cases, 0.2, seed=4)
    assert len(val) == 2 and len(train) == 8
    assert split_cases(cases, 0.2, seed=4) == (train, val)
    assert split_cases(cases, 0.2, seed=5) != (train, val)
    assert not {c["image"] for c in train} & {c["image"] for c in val}


def test_add_case_writes_an_msd_training_set(tmp_path, case):
    from ctseg_gui.io import read_image, read_label_map

    volume = read_image(case["image"])
    labels = read_label_map(case["label"], volume)
    first = add_case(tmp_path / "set", volume, labels)
    second = add_case(tmp_path / "set", volume, labels)
    assert first["image"].endswith("imagesTr/case_001.nii.gz")
    assert second["label"].endswith("labelsTr/case_002.nii.gz")
    cases = read_cases(tmp_path / "set")
    assert len(cases) == 2
    back = sitk.GetArrayFromImage(sitk.ReadImage(cases[1]["label"]))
    np.testing.assert_array_equal(back, sitk.GetArrayFromImage(sitk.ReadImage(case["label"])))
    check_cases(cases)


@pytest.mark.parametrize("train_config", [False, True])
def test_training_transforms_crop_patches_and_map_labels(tmp_path, case, train_config):
    from ctseg_gui.training.model import build_transforms, resolve_base

    bundle = build_spleen_bundle(tmp_path / "b", pixdim=(3.0,) * 3, train_config=train_config)
    base = resolve_base(str(bundle))
    assert (base.train_config is not None) == train_config
    with pytest.warns(CtsegWarning):
        mapping = value_map(check_cases([case])[0], base.classes, {"1": 1})
    train, val = build_transforms(base, [32, 32, 32], 3, mapping)
    names = [type(t).__name__ for t in train.transforms]
    # the bundle's own train.json chain (with its flips), else ours with label-balanced crops
    crop = "RandCropByPosNegLabeld" if train_config else "RandCropByLabelClassesd"
    assert crop in names and ("RandFlipd" in names) == train_config
    assert names.index("MapLabelValued") == names.index("LoadImaged") + 1
    samples = train(dict(case))
    assert len(samples) == 3  # batch_size patches per case, at the run's patch size
    for sample in samples:
        assert tuple(sample["image"].shape) == (1, 32, 32, 32)
        assert set(np.unique(sample["label"].numpy())) <= {0.0, 1.0}
    whole = val(dict(case))
    assert tuple(whole["image"].shape) == (1, 64, 64, 32)  # 3 mm grid, as the bundle resamples
    assert int(whole["label"].sum()) == int(
        (sitk.GetArrayFromImage(sitk.ReadImage(case["label"])) == 1).sum()
    )


def test_gpu_claims_are_listed_while_held_and_dead_ones_dropped(tmp_path, monkeypatch):
    from ctseg_gui.training.gpu_claim import claim_gpu, gpu_holders

    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path))
    assert gpu_holders() == []
    with claim_gpu(tmp_path / "run", "cuda:0"):
        (holder,) = gpu_holders()
        assert holder["device"] == "cuda:0" and holder["run_dir"] == str(tmp_path / "run")
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        stale = tmp_path / "training" / f"gpu-claim-{dead}.json"
        stale.write_text(json.dumps({"pid": int(dead), "run_dir": "x", "device": "cuda:0"}))
        assert len(gpu_holders()) == 1 and not stale.exists()
    assert gpu_holders() == []


def test_init_from_a_pretrained_encoder_loads_the_tensors_that_fit(tmp_path):
    import torch

    from ctseg_gui.core.errors import CtsegError as Error
    from ctseg_gui.training.model import build_network, resolve_base

    bundle = build_spleen_bundle(tmp_path / "b")
    base = resolve_base(str(bundle))
    torch.manual_seed(7)
    donor = build_network(base, "random").state_dict()
    first = list(donor)[:10]  # an "encoder": the first layers, saved under a prefix
    checkpoint = tmp_path / "encoder.pt"
    torch.save({"state_dict": {f"encoder.{k}": donor[k] for k in first}}, checkpoint)
    network = build_network(base, str(checkpoint)).state_dict()
    assert all(torch.equal(network[k], donor[k]) for k in first)
    # the rest starts from the config's own initialisation (not the donor's, not the bundle's)
    bundle_weights = torch.load(bundle / "models" / "model.pt", weights_only=True)
    last = [k for k in donor if k.endswith("weight") and k not in first][-1]
    assert not torch.equal(network[last], donor[last])
    assert not torch.equal(network[last], bundle_weights[last])
    torch.save({"x.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(Error, match="no tensor in it fits the base network"):
        build_network(base, str(tmp_path / "other.pt"))


def test_check_reports_the_cache_estimate_before_a_run(tmp_path, case, capsys):
    from ctseg_gui.cli import main

    bundle = build_spleen_bundle(tmp_path / "b", pixdim=(1.5, 1.5, 3.0))
    spec = write_spec(
        tmp_path / "spec.json", base_model=str(bundle), train=[case], val=[case], cache_rate=0.5
    )
    assert main(["train", str(spec), "--check"]) == 0
    report = json.loads(capsys.readouterr().out)
    # 64 x 64 x 32 voxels of 3 mm on a 1.5 x 1.5 x 3 mm grid, image + label as float32, twice
    # (training and validation list the case), half of it cached
    assert report["cache_bytes"] == 64 * 64 * 32 * 4 * 8 * 2 // 2
    assert report["train_cases"] == report["val_cases"] == 1
    assert report["label_map"]["5"] == 0 and "map to no model class" in report["warnings"][0]
    assert report["patch_size"] == [96, 96, 96]
    assert not (tmp_path / "spec-run").exists()  # nothing started
