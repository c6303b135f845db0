"""Build small MONAI bundles in the real model-zoo layout for tests and benchmarks.

The configs are written by this module in MONAI's config syntax with the seed bundles' network
definitions (``spleen_ct_segmentation``'s UNet, ``wholeBody_ct_segmentation``'s SegResNet) and the
same sections the model zoo uses (preprocessing, dataset, dataloader, inferer, postprocessing with
Invertd + SaveImaged, SupervisedEvaluator, checkpointloader, initialize, run), so MONAI's own
``python -m monai.bundle run`` executes them unmodified. Weights come from a fixed torch seed; the
last layer's biases are nudged so the label maps are not trivially all background.
"""

from __future__ import annotations

import json
from pathlib import Path

SPLEEN_NETWORK = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128, 256],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
    "norm": "batch",
}

WHOLEBODY_NETWORK = {
    "_target_": "SegResNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 105,
    "init_filters": 32,
    "blocks_down": [1, 2, 2, 4],
    "blocks_up": [1, 1, 1],
    "dropout_prob": 0.2,
}


def _common(preprocessing: list, inferer: dict, postprocessing: list, num_workers: int) -> dict:
    return {
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': i} for i in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": 1,
            "shuffle": False,
            "num_workers": num_workers,
        },
        "inferer": inferer,
        "postprocessing": {"_target_": "Compose", "transforms": postprocessing},
        "handlers": [{"_target_": "StatsHandler", "iteration_log": False}],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": True,
        },
    }


def _save(key: str = "pred") -> dict:
    return {
        "_target_": "SaveImaged",
        "keys": key,
        "output_dir": "@output_dir",
        "output_ext": "@output_ext",
        "output_dtype": "@output_dtype",
        "output_postfix": "@output_postfix",
        "separate_folder": "@separate_folder",
    }


def spleen_config(num_workers: int = 0) -> dict:
    """``inference.json`` with spleen_ct_segmentation's network, transforms and inferer."""
    config = {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "output_ext": ".nii.gz",
        "output_dtype": "$numpy.float32",
        "output_postfix": "trans",
        "separate_folder": True,
        "dataset_dir": "/workspace/data/Task09_Spleen",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/imagesTs/*.nii.gz')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": SPLEEN_NETWORK,
        "network": "$@network_def.to(@device)",
    }
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0], "mode": "bilinear"},
        {
            "_target_": "ScaleIntensityRanged",
            "keys": "image",
            "a_min": -57,
            "a_max": 164,
            "b_min": 0,
            "b_max": 1,
            "clip": True,
        },
        {"_target_": "EnsureTyped", "keys": "image"},
    ]
    inferer = {
        "_target_": "SlidingWindowInferer",
        "roi_size": [96, 96, 96],
        "sw_batch_size": 4,
        "overlap": 0.5,
    }
    postprocessing = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "image",
            "nearest_interp": False,
            "to_tensor": True,
        },
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        _save(),
    ]
    config.update(_common(preprocessing, inferer, postprocessing, num_workers))
    config["checkpointloader"] = {
        "_target_": "CheckpointLoader",
        "load_path": "$@bundle_root + '/models/model.pt'",
        "load_dict": {"model": "@network"},
    }
    config["initialize"] = [
        "$monai.utils.set_determinism(seed=123)",
        "$@checkpointloader(@evaluator)",
    ]
    config["run"] = ["$@evaluator.run()"]
    return config


def wholebody_config(num_workers: int = 0) -> dict:
    """``inference.json`` with wholeBody_ct_segmentation's network, variants and transforms."""
    config = {
        "displayable_configs": {"highres": True, "sw_overlap": 0.25, "sw_batch_size": 1},
        "imports": ["$import glob", "$import numpy", "$import os"],
        "bundle_root": ".",
        "image_key": "image",
        "output_dir": "$@bundle_root + '/eval'",
        "output_ext": ".nii.gz",
        "output_dtype": "$numpy.float32",
        "output_postfix": "trans",
        "separate_folder": True,
        "dataset_dir": "sampledata",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/imagesTs/*.nii.gz')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "pixdim": "$[1.5, 1.5, 1.5] if @displayable_configs#highres else [3.0, 3.0, 3.0]",
        "modelname": "$'model.pt' if @displayable_configs#highres else 'model_lowres.pt'",
        "network_def": WHOLEBODY_NETWORK,
        "network": "$@network_def.to(@device)",
    }
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "@image_key"},
        {"_target_": "EnsureTyped", "keys": "@image_key"},
        {"_target_": "EnsureChannelFirstd", "keys": "@image_key"},
        {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "@image_key", "pixdim": "@pixdim", "mode": "bilinear"},
        {"_target_": "NormalizeIntensityd", "keys": "@image_key", "nonzero": True},
        {"_target_": "ScaleIntensityd", "keys": "@image_key", "minv": -1.0, "maxv": 1.0},
    ]
    inferer = {
        "_target_": "SlidingWindowInferer",
        "roi_size": [96, 96, 96],
        "sw_batch_size": "@displayable_configs#sw_batch_size",
        "overlap": "@displayable_configs#sw_overlap",
        "padding_mode": "replicate",
        "mode": "gaussian",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
    }
    postprocessing = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "@image_key",
            "nearest_interp": True,
            "to_tensor": True,
        },
        _save(),
    ]
    config.update(_common(preprocessing, inferer, postprocessing, num_workers))
    config["checkpointloader"] = {
        "_target_": "CheckpointLoader",
        "load_path": "$@bundle_root + '/models/' + @modelname",
        "load_dict": {"model": "@network"},
    }
    config["initialize"] = [
        "$setattr(torch.backends.cudnn, 'benchmark', True)",
        "$@checkpointloader(@evaluator)",
    ]
    config["run"] = ["$@evaluator.run()"]
    return config


def _metadata(name: str, labels: dict[int, str], task: str) -> dict:
    channel_def = {str(v): n for v, n in labels.items()}
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
        "0.8.1/meta_schema_20220324.json",
        "version": "0.0.1",
        "changelog": {"0.0.1": "test bundle built by tests/bundles.py"},
        "monai_version": "1.4.0",
        "pytorch_version": "2.4.0",
        "numpy_version": "1.24.0",
        "required_packages_version": {"nibabel": "5.2.1", "pytorch-ignite": "0.4.11"},
        "name": name,
        "task": task,
        "description": "Small test bundle with fixed-seed weights (not a trained model).",
        "authors": "ctseg-gui tests",
        "copyright": "Copyright (c) ctseg-gui",
        "intended_use": "Testing only",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": 1,
                    "spatial_shape": [96, 96, 96],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(channel_def),
                    "spatial_shape": [96, 96, 96],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": channel_def,
                }
            },
        },
    }


def _seeded_state_dict(network_config: dict, seed: int, bias: list[float] | None = None) -> dict:
    import torch
    from monai.bundle import ConfigParser

    torch.manual_seed(seed)
    network = ConfigParser({"net": dict(network_config)}).get_parsed_content("net")
    state = network.state_dict()
    if bias is not None:
        # The last bias in the state dict is the output layer's: shifting it sets how much of the
        # image each class claims, so the random network's label map has real structures.
        last = [k for k in state if k.endswith("bias") and state[k].numel() == len(bias)][-1]
        state[last] = state[last] + torch.tensor(bias, dtype=state[last].dtype)
    return state


# Output-layer bias shifts that give the fixed-seed networks a spleen class of a few percent to a
# third of the abdomen CT (instead of everything in one class).
SPLEEN_BIAS = [0.1, -0.1]


def spleen_train_config(pixdim=(1.5, 1.5, 2.0)) -> dict:
    """``train.json`` in spleen_ct_segmentation's layout (``train#preprocessing``,
    ``validate#preprocessing``, ``optimizer``; the ignite trainer sections are left out)."""
    loading = [
        {"_target_": "LoadImaged", "keys": ["image", "label"]},
        {"_target_": "EnsureChannelFirstd", "keys": ["image", "label"]},
        {"_target_": "Orientationd", "keys": ["image", "label"], "axcodes": "RAS"},
        {
            "_target_": "Spacingd",
            "keys": ["image", "label"],
            "pixdim": list(pixdim),
            "mode": ["bilinear", "nearest"],
        },
        {
            "_target_": "ScaleIntensityRanged",
            "keys": "image",
            "a_min": -57,
            "a_max": 164,
            "b_min": 0,
            "b_max": 1,
            "clip": True,
        },
        {"_target_": "EnsureTyped", "keys": ["image", "label"]},
    ]
    crops = [
        {
            "_target_": "RandCropByPosNegLabeld",
            "keys": ["image", "label"],
            "label_key": "label",
            "spatial_size": [96, 96, 96],
            "pos": 1,
            "neg": 1,
            "num_samples": 4,
            "image_key": "image",
            "image_threshold": 0,
        },
        {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.5, "spatial_axis": 0},
    ]
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": SPLEEN_NETWORK,
        "network": "$@network_def.to(@device)",
        "loss": {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True},
        "optimizer": {
            "_target_": "torch.optim.Adam",
            "params": "$@network.parameters()",
            "lr": 1e-4,
        },
        "train": {"preprocessing": {"_target_": "Compose", "transforms": loading + crops}},
        "validate": {"preprocessing": {"_target_": "Compose", "transforms": list(loading)}},
    }


def build_spleen_bundle(
    root: Path,
    seed: int = 0,
    num_workers: int = 0,
    pixdim: tuple | None = None,
    train_config: bool = False,
) -> Path:
    """Write a spleen_ct_segmentation-style bundle under ``root`` and return its folder.

    ``pixdim`` replaces the spacing the preprocessing resamples to (1.5 x 1.5 x 2 mm; tests use
    coarser grids to stay fast); ``train_config`` also writes a ``configs/train.json``.
    """
    import torch

    bundle = Path(root)
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "models").mkdir(exist_ok=True)
    config = spleen_config(num_workers)
    if pixdim is not None:
        config["preprocessing"]["transforms"][3]["pixdim"] = list(pixdim)
    (bundle / "configs" / "inference.json").write_text(json.dumps(config, indent=4))
    if train_config:
        (bundle / "configs" / "train.json").write_text(
            json.dumps(spleen_train_config(pixdim or (1.5, 1.5, 2.0)), indent=4)
        )
    (bundle / "configs" / "metadata.json").write_text(
        json.dumps(
            _metadata("Spleen test bundle", {0: "background", 1: "spleen"}, "Spleen segmentation"),
            indent=4,
        )
    )
    state = _seeded_state_dict(SPLEEN_NETWORK, seed, SPLEEN_BIAS)
    torch.save(state, bundle / "models" / "model.pt")
    return bundle


def build_wholebody_bundle(
    root: Path,
    seed: int = 0,
    num_workers: int = 0,
    fitted_steps: int = 0,
    fitted_patch: int = 64,
    fitted_head: bool = False,
) -> Path:
    """Write a wholeBody_ct_segmentation-style bundle (model.pt and model_lowres.pt).

    ``fitted_steps`` > 0 writes briefly fitted weights (see fitted_weights.py; ``fitted_patch``
    the side of each step's crop) instead of fixed-seed ones; ``fitted_head`` fixed-seed weights
    with a fitted output layer (``fit_head_state_dict``: minutes, not an hour).
    """
    import torch

    bundle = Path(root)
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "models").mkdir(exist_ok=True)
    (bundle / "configs" / "inference.json").write_text(
        json.dumps(wholebody_config(num_workers), indent=4)
    )
    names = {0: "background", **{v: f"structure_{v}" for v in range(1, 105)}}
    (bundle / "configs" / "metadata.json").write_text(
        json.dumps(_metadata("Whole body test bundle", names, "Whole body segmentation"), indent=4)
    )
    for offset, (name, variant) in enumerate(
        (("model.pt", "highres"), ("model_lowres.pt", "lowres"))
    ):
        if fitted_head:
            from fitted_weights import fit_head_state_dict

            state = fit_head_state_dict(WHOLEBODY_NETWORK, variant, seed=seed)
        elif fitted_steps > 0:
            from fitted_weights import fit_state_dict

            state = fit_state_dict(
                WHOLEBODY_NETWORK, variant, fitted_steps, patch=fitted_patch, seed=seed
            )
        else:
            state = _seeded_state_dict(WHOLEBODY_NETWORK, seed + offset)
        torch.save(state, bundle / "models" / name)
    return bundle


def build_deepgrow_bundle(root: Path, spatial_size=(24, 48, 48), seed: int = 0):
    """A Deepgrow 3D bundle (configs/inference.json + models/model.pt) with a fixed-seed
    BasicUNet taking image + positive + negative guidance; returns the network."""
    import torch

    from ctseg_gui.interactive.deep import build_test_deepgrow_network

    root = Path(root)
    network = build_test_deepgrow_network(spatial_dims=3, seed=seed)
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    torch.save(network.state_dict(), root / "models" / "model.pt")
    config = {
        "deepgrow_spatial_dims": 3,
        "spatial_size": list(spatial_size),
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


TINY_UNET = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}


def tiny_spleen_config() -> dict:
    """The spleen config with a two-level UNet on 3 mm windows: seconds per run on a CPU."""
    config = spleen_config()
    config["network_def"] = dict(TINY_UNET)
    config["inferer"].update(roi_size=[64, 64, 32], sw_batch_size=1)
    for transform in config["preprocessing"]["transforms"]:
        if transform["_target_"] == "Spacingd":
            transform["pixdim"] = [3.0, 3.0, 3.0]
    return config


def write_bundle(
    root: Path, config: dict, scripts: dict[str, str] | None = None, yaml: bool = False
) -> Path:
    """A bundle folder around ``config`` (a TINY_UNET network) with seeded weights.

    ``scripts`` maps file names to the text of the bundle's ``scripts/`` package; ``yaml`` writes
    ``configs/inference.yaml`` instead of ``.json``.
    """
    import torch
    from monai.networks.nets import UNet

    root = Path(root)
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    if yaml:
        import yaml as pyyaml

        (root / "configs" / "inference.yaml").write_text(pyyaml.safe_dump(config))
    else:
        (root / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    metadata = {"name": "tiny", "version": "0.0.1"}
    (root / "configs" / "metadata.json").write_text(json.dumps(metadata))
    for name, text in (scripts or {}).items():
        (root / "scripts").mkdir(exist_ok=True)
        (root / "scripts" / name).write_text(text)
    torch.manual_seed(0)
    args = {k: v for k, v in TINY_UNET.items() if k != "_target_"}
    torch.save(UNet(**args).state_dict(), root / "models" / "model.pt")
    return root
