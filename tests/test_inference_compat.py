"""Bundles written for older MONAI releases, and bundles configured in YAML, still run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from bundles import _metadata, build_spleen_bundle, spleen_config

from ctseg_gui.cli import main
from ctseg_gui.inference.compat import adapt_network_config
from ctseg_gui.io import read_image


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


def _parser(network: dict):
    from monai.bundle import ConfigParser

    return ConfigParser({"network_def": dict(network)})


def test_retired_swin_unetr_img_size_is_dropped():
    # swin_unetr_btcv_segmentation's config passes img_size, which MONAI 1.5 removed
    network = {"_target_": "SwinUNETR", "img_size": 96, "in_channels": 1, "out_channels": 3,
               "feature_size": 12}  # fmt: skip
    with pytest.raises(Exception, match="img_size"):
        _parser(network).get_parsed_content("network_def")  # what MONAI's own workflow hits
    parser = _parser(network)
    assert adapt_network_config(parser) == ["SwinUNETR: 'img_size' dropped (retired by MONAI)"]
    built = parser.get_parsed_content("network_def")
    assert type(built).__name__ == "SwinUNETR"


def test_retired_unetr_pos_embed_becomes_proj_type():
    network = {"_target_": "UNETR", "in_channels": 1, "out_channels": 2, "img_size": 32,
               "feature_size": 8, "hidden_size": 48, "mlp_dim": 96, "num_heads": 4,
               "pos_embed": "perceptron"}  # fmt: skip
    parser = _parser(network)
    assert adapt_network_config(parser) == ["UNETR: 'pos_embed' passed as 'proj_type'"]
    built = parser.get_parsed_content("network_def")
    assert type(built.vit.patch_embedding.patch_embeddings).__name__ != "Conv3d"  # perceptron


def test_current_arguments_are_left_alone():
    network = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
               "channels": [4, 8], "strides": [2]}  # fmt: skip
    parser = _parser(network)
    assert adapt_network_config(parser) == []
    assert parser.get()["network_def"] == network


def test_swin_unetr_bundle_with_img_size_segments(tmp_path, small_ct):
    bundle = tmp_path / "swin_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    config = spleen_config()
    config["network_def"] = {"_target_": "SwinUNETR", "img_size": 96, "in_channels": 1,
                             "out_channels": 2, "feature_size": 12}  # fmt: skip
    config["inferer"]["overlap"] = 0.25
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    (bundle / "configs" / "metadata.json").write_text(
        json.dumps(_metadata("Swin test", {0: "background", 1: "organ"}, "test"))
    )
    torch.manual_seed(0)
    parser = _parser(config["network_def"])
    adapt_network_config(parser)
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models/model.pt")
    out = tmp_path / "swin.nii.gz"
    assert main(["segment", str(small_ct), "-o", str(out), "--bundle", str(bundle), "-q"]) == 0
    labels = read_image(out)
    assert labels.same_grid(read_image(small_ct))


def test_yaml_bundle_gives_the_same_labels_as_json(tmp_path, small_ct):
    json_bundle = build_spleen_bundle(tmp_path / "json_bundle")
    yaml_bundle = tmp_path / "yaml_bundle"
    (yaml_bundle / "configs").mkdir(parents=True)
    (yaml_bundle / "models").mkdir()
    config = json.loads((json_bundle / "configs" / "inference.json").read_text())
    (yaml_bundle / "configs" / "inference.yaml").write_text(yaml.safe_dump(config))
    for name in ("configs/metadata.json", "models/model.pt"):
        (yaml_bundle / name).write_bytes((json_bundle / name).read_bytes())
    results = []
    for bundle in (json_bundle, yaml_bundle):
        out = tmp_path / f"{bundle.name}.nii.gz"
        assert main(["segment", str(small_ct), "-o", str(out), "--bundle", str(bundle), "-q"]) == 0
        results.append(read_image(out).array)
    assert results[0].any()
    np.testing.assert_array_equal(results[0], results[1])


def test_class_names_from_label_def(tmp_path):
    # some model-zoo bundles (pediatric_abdominal_ct_segmentation) name classes in label_def
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.bundle import load_plan
    from ctseg_gui.inference.engine import label_table_for

    bundle = build_spleen_bundle(tmp_path / "bundle")
    metadata_file = bundle / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    pred = metadata["network_data_format"]["outputs"]["pred"]
    pred["label_def"] = {"0": "background", "1": "liver"}
    del pred["channel_def"]
    metadata_file.write_text(json.dumps(metadata))
    ref = resolve_model(bundle=bundle)
    table = label_table_for(ref, load_plan(ref))
    assert [(entry.value, entry.name) for entry in table] == [(1, "liver")]
