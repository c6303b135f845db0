"""The fine-tuning job spec: one JSON file, read strictly (unknown keys are an error naming them).

Keys (DESIGN.md "Command-line contract"): ``base_model``, ``variant``, ``train``, ``val``,
``val_fraction``, ``seed``, ``label_map``, ``max_iterations``, ``val_interval``,
``checkpoint_interval``, ``batch_size``, ``patch_size``, ``lr``, ``optimizer``, ``cache_rate``,
``device``, ``nproc``, ``run_dir``, ``install_as``; and these of our own: ``lr_schedule``
(``constant`` / ``cosine``), ``weight_decay``, ``early_stop`` (validations without a better mean
Dice before stopping; 0 = never), ``init`` (``bundle``: the bundle's weights; ``random``; or a
checkpoint file whose matching tensors, e.g. a pretrained encoder, initialise the network),
``amp`` (mixed precision on CUDA), ``num_workers`` (data loader processes).
Relative paths are relative to the spec file. ``batch_size`` is the number of patches each process
takes per iteration, so ``nproc`` processes see ``nproc * batch_size`` patches per iteration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ctseg_gui.core.errors import CtsegError

OPTIMIZERS = ("Adam", "AdamW", "Novograd")
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")


class SpecError(CtsegError):
    """A spec file that cannot be run as it is."""


@dataclass
class TrainSpec:
    """A fine-tuning run, as read from ``SPEC.json`` (paths absolute after :func:`load_spec`)."""

    base_model: str = ""
    variant: str | None = None
    train: list[dict] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)
    val_fraction: float = 0.0
    seed: int = 0
    label_map: dict[str, int] | None = None
    max_iterations: int = 1000
    val_interval: int = 100
    checkpoint_interval: int = 50
    batch_size: int = 2
    patch_size: list[int] | None = None  # default: the bundle's sliding-window ROI
    lr: float = 1e-4
    optimizer: str = "Adam"
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    early_stop: int = 0
    cache_rate: float = 1.0
    device: str = "auto"
    amp: bool = True
    nproc: int = 1
    num_workers: int = 0
    init: str = "bundle"
    run_dir: str = ""
    install_as: str | None = None
    #: The spec file this came from (not a key of the file).
    source: Path | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        """The spec as the JSON object it is written as (without ``source``)."""
        data = asdict(self)
        data.pop("source")
        return data

    @property
    def base_is_folder(self) -> bool:
        """Whether ``base_model`` names a bundle folder rather than an installed id."""
        return Path(self.base_model).is_dir()


KEYS = tuple(f.name for f in fields(TrainSpec) if f.name != "source")


def _relative(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _cases(value: Any, key: str, base: Path, source: Path) -> list[dict]:
    if not isinstance(value, list):
        raise SpecError(f'\'{key}\' must be a list of {{"image": ..., "label": ...}}', source)
    cases = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or "image" not in item or "label" not in item:
            raise SpecError(f'\'{key}\' entry {i} needs "image" and "label"', source)
        cases.append(
            {"image": _relative(item["image"], base), "label": _relative(item["label"], base)}
        )
    return cases


def spec_from_dict(data: dict, source: Path | None = None) -> TrainSpec:
    """Check a spec object and make its paths absolute (relative to ``source``'s folder)."""
    where = source or "spec"
    if not isinstance(data, dict):
        raise SpecError("the spec must be a JSON object", where)
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r} in the spec (known keys: {', '.join(KEYS)})", where
        )
    base = source.parent.resolve() if source is not None else Path.cwd()
    spec = TrainSpec(source=source)
    defaults = TrainSpec()
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        checked = getattr(defaults, key) is not None and expected in (int, float, str, bool)
        if checked and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise SpecError(f"'{key}' must be {expected.__name__}, not {value!r}", where)
        setattr(spec, key, value)
    if not spec.base_model:
        raise SpecError("'base_model' is missing (an installed model id or a bundle folder)", where)
    candidate = Path(spec.base_model).expanduser()
    if not candidate.is_absolute() and (base / candidate).is_dir():
        spec.base_model = str((base / candidate).resolve())
    spec.train = _cases(spec.train, "train", base, where)
    spec.val = _cases(spec.val, "val", base, where)
    if not spec.train:
        raise SpecError("'train' lists no cases", where)
    if not 0.0 <= spec.val_fraction < 1.0:
        raise SpecError("'val_fraction' must be in [0, 1)", where)
    if spec.label_map is not None:
        if not isinstance(spec.label_map, dict):
            raise SpecError("'label_map' must be an object {\"<file value>\": <class>}", where)
        try:
            spec.label_map = {str(int(float(k))): int(v) for k, v in spec.label_map.items()}
        except (TypeError, ValueError) as error:
            raise SpecError(f"'label_map' must map numbers to numbers ({error})", where) from None
    for key in ("max_iterations", "val_interval", "checkpoint_interval", "batch_size", "nproc"):
        if getattr(spec, key) < 1:
            raise SpecError(f"'{key}' must be at least 1", where)
    if spec.patch_size is not None:
        if isinstance(spec.patch_size, int):
            spec.patch_size = [spec.patch_size] * 3
        if len(spec.patch_size) != 3 or any(int(p) < 16 for p in spec.patch_size):
            raise SpecError("'patch_size' must be three sizes of at least 16 voxels", where)
        spec.patch_size = [int(p) for p in spec.patch_size]
    for key, allowed in (
        ("optimizer", OPTIMIZERS),
        ("lr_schedule", SCHEDULES),
        ("device", DEVICES),
    ):
        if getattr(spec, key) not in allowed:
            raise SpecError(f"'{key}' must be one of {', '.join(allowed)}", where)
    if not 0.0 <= spec.cache_rate <= 1.0:
        raise SpecError("'cache_rate' must be in [0, 1]", where)
    if spec.init not in ("bundle", "random"):
        spec.init = _relative(spec.init, base)
        if not Path(spec.init).is_file():
            raise SpecError(f"'init' names no file: {spec.init}", where)
    if not spec.run_dir:
        name = source.stem if source is not None else "run"
        spec.run_dir = str(base / f"{name}-run")
    spec.run_dir = _relative(spec.run_dir, base)
    return spec


def load_spec(path: str | Path) -> TrainSpec:
    """Read and check ``SPEC.json``.

    Raises
    ------
    SpecError
        Not JSON, unknown key (named), wrong type, missing cases; the message names the file.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SpecError("spec file does not exist", path)
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise SpecError(f"not valid JSON ({error})", path) from None
    return spec_from_dict(data, path)


def template(model: str, variant: str | None = None) -> dict:
    """A spec for ``model`` with its defaults (patch size = its ROI, its optimiser when known)."""
    from ctseg_gui.training.model import base_defaults

    spec = TrainSpec(base_model=model, variant=variant).to_json()
    spec.update(base_defaults(model, variant))
    spec["train"] = [{"image": "imagesTr/case_001.nii.gz", "label": "labelsTr/case_001.nii.gz"}]
    spec["val_fraction"] = 0.2
    spec["run_dir"] = "runs/finetune-1"
    return spec
