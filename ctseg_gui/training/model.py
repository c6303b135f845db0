"""The base model of a fine-tuning run: its network, weights, classes and data transforms.

Everything comes from the bundle through :mod:`ctseg_gui.inference.bundle`'s parsing entry points
(so trust checks and config adaptations apply). Transforms: the bundle's own ``configs/train.json``
(``train#preprocessing`` / ``validate#preprocessing``) when it has one, with its crop sizes set to
the run's patch size; otherwise its inference preprocessing applied to image and label alike
(nearest-neighbour for labels), followed by label-balanced random crops
(``RandCropByLabelClassesd``, equal ratios per class).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctseg_gui.inference.errors import BundleError
from ctseg_gui.inference.modelref import ModelRef, resolve_model

# Transforms that move or resample voxels: in our own training chain they apply to the label too.
SPATIAL = {
    "LoadImaged",
    "EnsureChannelFirstd",
    "EnsureTyped",
    "Orientationd",
    "Spacingd",
    "CropForegroundd",
    "SpatialPadd",
    "DivisiblePadd",
    "CenterSpatialCropd",
    "Resized",
    "Flipd",
    "Rotate90d",
    "Transposed",
}
# Name fragments of transforms that change intensities only (image key only).
INTENSITY = ("Intensity", "Normalize", "Clip", "HistogramNormalize", "CastToType", "ToTensor")
# Crop transforms in train.json whose size / sample count follow the run's patch size / batch.
CROPS = {
    "RandCropByPosNegLabeld",
    "RandCropByLabelClassesd",
    "RandSpatialCropd",
    "RandSpatialCropSamplesd",
    "RandWeightedCropd",
}


@dataclass
class BaseModel:
    """A resolved base model with what training needs from it."""

    ref: ModelRef
    plan: Any  # inference.bundle.BundlePlan
    classes: dict[int, str]  # channel -> name, background included
    roi: list[int]
    train_config: Path | None

    @property
    def num_classes(self) -> int:
        return max(self.classes) + 1 if self.classes else 2

    @property
    def model_id(self) -> str:
        return self.ref.model_id or self.ref.bundle.name


def resolve_base(name: str, variant: str | None = None) -> BaseModel:
    """Resolve an installed model id or a bundle folder (``name``) for training."""
    from ctseg_gui.inference.bundle import load_plan

    folder = Path(name).expanduser()
    ref = (
        resolve_model(None, folder, variant)
        if folder.is_dir()
        else resolve_model(name, None, variant)
    )
    if ref.builtin:
        raise BundleError(f"the built-in model {name} has no network to fine-tune")
    plan = load_plan(ref)
    roi = getattr(plan.inferer, "roi_size", None) or [96, 96, 96]
    roi = [int(r) for r in (roi if isinstance(roi, (list, tuple)) else [roi] * 3)]
    classes = dict(plan.labels) or {0: "background", 1: "foreground"}
    classes.setdefault(0, "background")
    train_config = ref.bundle / "configs" / "train.json"
    return BaseModel(ref, plan, classes, roi, train_config if train_config.is_file() else None)


def base_defaults(name: str, variant: str | None = None) -> dict:
    """Spec values taken from the model: patch size (its ROI), optimiser and learning rate."""
    base = resolve_base(name, variant)
    defaults: dict[str, Any] = {"patch_size": base.roi}
    if base.train_config is not None:
        try:
            optimizer = json.loads(base.train_config.read_text()).get("optimizer", {})
        except ValueError:
            optimizer = {}
        target = str(optimizer.get("_target_", "")).rsplit(".", 1)[-1]
        if target in ("Adam", "AdamW", "Novograd"):
            defaults["optimizer"] = target
        if isinstance(optimizer.get("lr"), (int, float)):
            defaults["lr"] = float(optimizer["lr"])
    return defaults


def build_network(base: BaseModel, init: str = "bundle"):
    """The base network on the CPU, in train mode, with the weights ``init`` asks for.

    Parameters
    ----------
    init
        ``bundle`` (the bundle's weights), ``random`` (the config's initialisation) or a checkpoint
        file: its tensors whose names and shapes match (after stripping ``module.`` / ``encoder.``
        style prefixes) are loaded, e.g. a self-supervised pretrained encoder.
    """
    import torch

    from ctseg_gui.inference.bundle import _fit_weights, _load_state, _unwrap

    plan = base.plan
    config = plan.parser.get()
    net_key = "network_def" if "network_def" in config else "network"
    try:  # lazy=False: a new network each call, never the parser's cached instance
        network = plan.parser.get_parsed_content(net_key, lazy=False)
    except Exception as error:  # noqa: BLE001 - the config's fault
        raise BundleError(
            f"cannot build the network ('{net_key}'): {error}", plan.config_file
        ) from error
    if not isinstance(network, torch.nn.Module):
        raise BundleError(f"'{net_key}' is not a torch network", plan.config_file)
    network = network.cpu()
    if init == "bundle":
        state = _unwrap(_load_state(plan.weights))
        if not isinstance(state, dict):
            raise BundleError(
                "weights are TorchScript; fine-tuning needs a state dict", plan.weights
            )
        _fit_weights(network, state, plan.weights)
    elif init != "random":
        load_matching(network, Path(init))
    return network.train()


def load_matching(network, path: Path) -> int:
    """Load the tensors of checkpoint ``path`` that fit ``network`` by name and shape."""
    from ctseg_gui.inference.bundle import _load_state, _unwrap

    state = _unwrap(_load_state(path))
    if not isinstance(state, dict):
        raise BundleError("holds no state dict", path)
    own = network.state_dict()
    loaded = {}
    for key, value in state.items():
        for candidate in (key, *(key.split(".", n)[-1] for n in (1, 2))):
            if candidate in own and tuple(own[candidate].shape) == tuple(value.shape):
                loaded[candidate] = value
                break
    if not loaded:
        raise BundleError("no tensor in it fits the base network (names or shapes differ)", path)
    network.load_state_dict(loaded, strict=False)
    return len(loaded)


def _items(raw: Any) -> list:
    if isinstance(raw, dict):
        return list(raw.get("transforms", []))
    return list(raw) if isinstance(raw, list) else []


def _name(item: Any) -> str:
    return str(item.get("_target_", "")).rsplit(".", 1)[-1] if isinstance(item, dict) else ""


def _own_chain(base: BaseModel) -> list:
    """The inference preprocessing as dict configs applied to image and label."""
    parser = base.plan.parser
    items = []
    for item in _items(parser["preprocessing"]):
        name = _name(item)
        item = copy.deepcopy(item)
        if name in SPATIAL:
            item["keys"] = ["image", "label"]
            if name == "Spacingd":
                item["mode"] = ["bilinear", "nearest"]
            elif name == "Resized":
                item["mode"] = ["area", "nearest"]
            elif name == "CropForegroundd":
                item["source_key"] = "image"
        elif any(part in name for part in INTENSITY):
            item["keys"] = "image"
        else:
            raise BundleError(
                f"preprocessing transform {name or item!r}: unknown whether it applies to label "
                "maps; give the bundle a configs/train.json",
                base.plan.config_file,
            )
        items.append(item)
    return items


def build_transforms(base: BaseModel, patch: list[int], samples: int, value_map: dict):
    """``(train, validation)`` MONAI Compose chains for image/label dictionaries.

    ``value_map`` maps values found in the label files onto model classes (values that are no
    class go to 0): it runs right after loading, through MONAI's ``MapLabelValued``.
    """
    from monai import transforms as T

    remap = (
        [
            T.MapLabelValued(
                keys="label",
                orig_labels=list(value_map),
                target_labels=list(value_map.values()),
                dtype="float32",
            )
        ]
        if any(float(k) != float(v) for k, v in value_map.items())
        else []
    )
    if base.train_config is not None:
        train, val = _bundle_train_chains(base, patch, samples)
    else:
        parser = base.plan.parser
        parser["_ctseg_train_chain"] = {"_target_": "Compose", "transforms": _own_chain(base)}
        try:
            chain = list(parser.get_parsed_content("_ctseg_train_chain", lazy=False).transforms)
        except Exception as error:  # noqa: BLE001 - the config's fault
            raise BundleError(
                f"cannot build training transforms ({error})", base.plan.config_file
            ) from error
        crops = [
            T.SpatialPadd(keys=["image", "label"], spatial_size=patch),
            T.RandCropByLabelClassesd(
                keys=["image", "label"],
                label_key="label",
                spatial_size=patch,
                num_classes=base.num_classes,
                num_samples=samples,
                warn=False,
            ),
        ]
        train, val = chain + crops, list(chain)
    return T.Compose(_after_load(train, remap)), T.Compose(_after_load(val, remap))


def _after_load(chain: list, extra: list) -> list:
    at = next((i + 1 for i, t in enumerate(chain) if type(t).__name__ == "LoadImaged"), 0)
    return chain[:at] + extra + chain[at:]


def _bundle_train_chains(base: BaseModel, patch: list[int], samples: int):
    from monai.bundle import ConfigParser

    path = base.train_config
    parser = ConfigParser()
    try:
        parser.read_config(str(path))
        metadata = base.ref.bundle / "configs" / "metadata.json"
        if metadata.is_file():
            parser.read_meta(str(metadata))
    except Exception as error:  # noqa: BLE001
        raise BundleError(f"cannot read the training config ({error})", path) from error
    parser["bundle_root"] = str(base.ref.bundle)
    chains = []
    for key in ("train#preprocessing", "validate#preprocessing"):
        try:
            raw = parser[key]
        except KeyError:
            raise BundleError(f"'{key}' is missing", path) from None
        for i, item in enumerate(_items(raw)):
            if _name(item) in CROPS:
                prefix = f"{key}#transforms#{i}" if isinstance(raw, dict) else f"{key}#{i}"
                for field_name in ("spatial_size", "roi_size"):
                    if field_name in item:
                        parser[f"{prefix}#{field_name}"] = list(patch)
                if "num_samples" in item:
                    parser[f"{prefix}#num_samples"] = samples
        try:
            chain = parser.get_parsed_content(key, lazy=False)
        except Exception as error:  # noqa: BLE001
            raise BundleError(f"cannot build '{key}' ({error})", path) from error
        chains.append(list(getattr(chain, "transforms", [chain])))
    return chains[0], chains[1]


def target_spacing(base: BaseModel) -> list[float] | None:
    """The voxel spacing the preprocessing resamples to (for memory estimates), if any."""
    for t in base.plan.transforms:
        if type(t).__name__ == "Spacingd":
            pixdim = getattr(t.spacing_transform, "pixdim", None)
            if pixdim is not None:
                return [float(p) for p in pixdim]
    return None
