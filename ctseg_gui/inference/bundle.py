"""Read a MONAI bundle: config, network, weights, transforms, inferer and post-processing order.

Everything comes from the bundle's own ``configs/inference.json`` through
``monai.bundle.ConfigParser`` (with ``bundle_root`` set and the bundle's ``scripts/`` importable), so
references, expressions and ``displayable_configs`` switches mean what they mean to MONAI.
Networks are cached per (bundle, variant, weights, device) so a long-lived worker keeps them warm.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.inference.compat import adapt_network_config
from ctseg_gui.inference.errors import BundleError
from ctseg_gui.inference.modelref import ModelRef, bundle_config_file

_NETWORKS: OrderedDict = OrderedDict()
_NETWORK_CACHE_SIZE = 3
# Networks built (weights read) in this process: a batch run shows it builds one for N cases.
_BUILDS = {"count": 0}


@dataclass
class BundlePlan:
    """What the engine needs from a bundle, parsed once per model reference."""

    root: Path
    config_file: Path
    parser: Any
    preprocessing: Any  # monai Compose
    transforms: list
    image_key: str
    inferer: Any
    activation: str | None
    probabilities_first: bool  # Invertd (interpolating) runs before the argmax
    amp: bool
    weights: Path
    labels: dict[int, str] = field(default_factory=dict)


def _target(item: Any) -> str:
    return str(item.get("_target_", "")).rsplit(".", 1)[-1] if isinstance(item, dict) else ""


class _ScriptsFinder:
    """Finds ``scripts`` (and its submodules) in one bundle's ``scripts/`` folder only.

    Putting the bundle folder itself on ``sys.path`` would let any ``*.py`` beside ``configs/``
    shadow a module imported later; this finder makes exactly the reviewed ``scripts/`` package
    importable, and only once the bundle is trusted.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name: str, path=None, target=None):
        if name != "scripts":
            return None
        import importlib.machinery
        import importlib.util

        init = self.folder / "__init__.py"
        if init.is_file():
            return importlib.util.spec_from_file_location(
                "scripts", init, submodule_search_locations=[str(self.folder)]
            )
        spec = importlib.machinery.ModuleSpec("scripts", None, is_package=True)
        spec.submodule_search_locations = [str(self.folder)]  # a namespace package
        return spec


def _enable_scripts(root: Path) -> None:
    """Make ``import scripts`` load this bundle's scripts package (not another bundle's)."""
    folder = root / "scripts"
    for finder in [f for f in sys.meta_path if isinstance(f, _ScriptsFinder)]:
        sys.meta_path.remove(finder)
    loaded = sys.modules.get("scripts")
    if loaded is not None and list(getattr(loaded, "__path__", [])) != [str(folder)]:
        for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
            del sys.modules[name]
    if folder.is_dir():
        sys.meta_path.insert(0, _ScriptsFinder(folder))


def read_bundle_configs(root: Path, config_file: Path) -> tuple[dict, dict | None]:
    """The content of a bundle's config and metadata, once the bundle may run.

    The one door to ``ConfigParser``: every parse of a bundle goes through here, so nothing in
    a config runs before :func:`~ctseg_gui.inference.trust.require_trusted` has allowed it, and
    the parser gets the very content that was reviewed (not a second read of the file).

    Raises
    ------
    UntrustedBundleError
        The bundle would run code that is not known to be safe and the user has not accepted it.
    """
    from ctseg_gui.inference.trust import require_trusted

    files = [config_file]
    metadata = root / "configs" / "metadata.json"
    if metadata.is_file():
        files.append(metadata)
    review = require_trusted(
        root,
        files,
        hint="review and accept it with Verify in the model manager, or run it with --trust",
    )
    contents = [review.configs[p.resolve().relative_to(root.resolve()).as_posix()] for p in files]
    for path, content in zip(files, contents, strict=True):
        if not isinstance(content, dict):
            raise BundleError("the config is not a mapping of ids to values", path)
    return contents[0], contents[1] if len(contents) > 1 else None


def make_parser(ref: ModelRef):
    """A ConfigParser on the bundle's inference config with the ref's overrides applied."""
    from monai.bundle import ConfigParser

    root = ref.bundle
    config_file = bundle_config_file(root)
    config, metadata = read_bundle_configs(root, config_file)
    parser = ConfigParser()
    try:
        parser.read_config(config)
    except Exception as error:  # noqa: BLE001 - any parse failure is the config's fault
        raise BundleError(f"cannot read the config ({error})", config_file) from error
    if metadata is not None:
        try:
            parser.read_meta(metadata)
        except Exception as error:  # noqa: BLE001
            raise BundleError(
                f"cannot read the metadata ({error})", root / "configs" / "metadata.json"
            ) from error
    parser["bundle_root"] = str(root)
    for key, value in ref.overrides:
        parser[key] = value
    adapt_network_config(parser)
    _enable_scripts(root)
    return parser, config_file


def _parsed(parser, key: str, config_file: Path, what: str):
    try:
        return parser.get_parsed_content(key)
    except Exception as error:  # noqa: BLE001 - report which section failed, in the file's name
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BundleError(f"cannot build the {what} ('{key}'): {reason}", config_file) from error


def _weights_path(ref: ModelRef, parser, config_file: Path) -> Path:
    root = ref.bundle
    if ref.weights:
        return root / ref.weights
    config = parser.get()
    if (
        isinstance(config.get("checkpointloader"), dict)
        and "load_path" in config["checkpointloader"]
    ):
        return Path(_parsed(parser, "checkpointloader#load_path", config_file, "checkpoint path"))
    for key in ("handlers", "validate#handlers", "evaluator#val_handlers"):
        try:
            items = parser[key]
        except KeyError:
            continue
        if isinstance(items, list):
            for i, item in enumerate(items):
                if _target(item) == "CheckpointLoader" and "load_path" in item:
                    return Path(
                        _parsed(parser, f"{key}#{i}#load_path", config_file, "checkpoint path")
                    )
    for name in ("model.pt", "model.ts"):
        if (root / "models" / name).is_file():
            return root / "models" / name
    return root / "models" / "model.pt"


def _postprocessing_order(parser, config_file: Path) -> tuple[str | None, bool]:
    """(activation, probabilities_first) read from the bundle's postprocessing chain."""
    try:
        post = parser["postprocessing"]
    except KeyError:
        return "softmax", False
    items = post.get("transforms", []) if isinstance(post, dict) else post
    activation, invert_at, argmax_at, nearest = None, None, None, True
    for i, item in enumerate(items if isinstance(items, list) else []):
        name = _target(item)
        key = f"postprocessing#transforms#{i}" if isinstance(post, dict) else f"postprocessing#{i}"
        if name in ("Activationsd", "Activations"):
            if item.get("softmax") and _parsed(
                parser, f"{key}#softmax", config_file, "postprocessing"
            ):
                activation = "softmax"
            elif item.get("sigmoid") and _parsed(
                parser, f"{key}#sigmoid", config_file, "postprocessing"
            ):
                activation = "sigmoid"
        elif name in ("Invertd",) and invert_at is None:
            invert_at = i
            if "nearest_interp" in item:
                nearest = bool(
                    _parsed(parser, f"{key}#nearest_interp", config_file, "postprocessing")
                )
        elif name in ("AsDiscreted", "AsDiscrete") and argmax_at is None:
            argmax_at = i
    probabilities_first = (
        invert_at is not None and not nearest and (argmax_at is None or invert_at < argmax_at)
    )
    return activation, probabilities_first


def _channel_labels(parser) -> dict[int, str]:
    """Class names from the metadata: the output's ``channel_def``, or ``label_def`` (used by
    some model-zoo bundles, e.g. pediatric_abdominal_ct_segmentation); ``pred`` first."""
    try:
        outputs = parser["_meta_#network_data_format#outputs"]
    except (KeyError, TypeError):
        return {}
    if not isinstance(outputs, dict):
        return {}
    for name in sorted(outputs, key=lambda n: n != "pred"):
        output = outputs[name] if isinstance(outputs[name], dict) else {}
        channels = output.get("channel_def") or output.get("label_def")
        try:
            return {int(k): str(v) for k, v in channels.items()}
        except (AttributeError, ValueError):
            continue
    return {}


def load_plan(ref: ModelRef) -> BundlePlan:
    """Parse a bundle for :func:`~ctseg_gui.inference.engine.segment_volume`."""
    parser, config_file = make_parser(ref)
    preprocessing = _parsed(parser, "preprocessing", config_file, "preprocessing transforms")
    transforms = list(getattr(preprocessing, "transforms", [preprocessing]))
    image_key = "image"
    for t in transforms:
        if type(t).__name__ == "LoadImaged":
            keys = tuple(t.keys)
            image_key = keys[0]
            if len(keys) > 1 and not getattr(t, "allow_missing_keys", False):
                raise BundleError(
                    f"the bundle reads {len(keys)} images per case ({', '.join(keys)}); "
                    "`ctseg segment` runs bundles that take one CT",
                    config_file,
                )
            break
    inferer = _parsed(parser, "inferer", config_file, "inferer")
    activation, probabilities_first = _postprocessing_order(parser, config_file)
    amp = True
    evaluator = parser.get().get("evaluator")
    if isinstance(evaluator, dict) and "amp" in evaluator:
        amp = bool(_parsed(parser, "evaluator#amp", config_file, "evaluator"))
    return BundlePlan(
        root=ref.bundle,
        config_file=config_file,
        parser=parser,
        preprocessing=preprocessing,
        transforms=transforms,
        image_key=image_key,
        inferer=inferer,
        activation=activation,
        probabilities_first=probabilities_first,
        amp=amp,
        weights=_weights_path(ref, parser, config_file),
        labels=_channel_labels(parser),
    )


def _load_state(path: Path):
    import torch

    if not path.is_file():
        raise BundleError("weights file is missing", path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - maybe TorchScript, maybe damaged
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception:  # noqa: BLE001
            raise BundleError(
                f"weights file is damaged or not a PyTorch file ({first})", path
            ) from first


def _unwrap(state) -> dict:
    if isinstance(state, dict):
        for key in ("model", "state_dict", "network", "net"):
            if key in state and isinstance(state[key], dict):
                return _unwrap(state[key])
    return state


def _fit_weights(network, state: dict, path: Path) -> None:
    """Load a state dict strictly; the error names missing / unexpected keys and shape clashes."""
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    clashes = [
        f"{k} {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
        for k in own
        if k in state
        and hasattr(state[k], "shape")
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or clashes:
        parts = []
        if clashes:
            parts.append(f"{len(clashes)} shape mismatch(es): " + "; ".join(clashes[:3]))
        if missing:
            parts.append(f"{len(missing)} missing key(s): " + ", ".join(missing[:3]))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(unexpected[:3]))
        raise BundleError("weights do not fit the network: " + "; ".join(parts), path)
    network.load_state_dict(state, strict=True)


def get_network(ref: ModelRef, plan: BundlePlan, device):
    """The bundle's network with its weights, in eval mode on ``device`` (cached)."""
    import torch

    weights = plan.weights
    try:
        stamp = weights.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(plan.root), ref.variant, ref.overrides, str(weights), stamp, str(device))
    if key in _NETWORKS:
        _NETWORKS.move_to_end(key)
        return _NETWORKS[key]
    _BUILDS["count"] += 1
    state = _load_state(weights)
    if isinstance(state, torch.jit.ScriptModule):
        network = state
    else:
        config = plan.parser.get()
        net_key = "network_def" if "network_def" in config else "network"
        network = _parsed(plan.parser, net_key, plan.config_file, "network")
        if not isinstance(network, torch.nn.Module):
            raise BundleError(f"'{net_key}' is not a torch network", plan.config_file)
        if not isinstance(_unwrap(state), dict):
            raise BundleError("weights file holds no state dict", weights)
        _fit_weights(network, _unwrap(state), weights)
    network = network.to(device).eval()
    # Channels-last 3D convolutions are ~1.7x faster on CPU (oneDNN) and no slower on CUDA; the
    # results agree with the default layout to float rounding.
    with contextlib.suppress(RuntimeError, TypeError, AttributeError):
        network = network.to(memory_format=torch.channels_last_3d)
    _NETWORKS[key] = network
    while len(_NETWORKS) > _NETWORK_CACHE_SIZE:
        _NETWORKS.popitem(last=False)
    return network


def network_builds() -> int:
    """How many networks this process has built from their weights files (cache misses)."""
    return _BUILDS["count"]


def clear_network_cache() -> None:
    """Forget every cached network (frees their memory)."""
    _NETWORKS.clear()


__all__ = [
    "BundlePlan",
    "CtsegError",
    "clear_network_cache",
    "get_network",
    "load_plan",
    "network_builds",
]
