"""Turn a finished run into a new, versioned bundle in the user's model store.

The bundle is the base bundle's files (configs, scripts, docs; not its weights or install record)
with the run's weights as ``models/model.pt`` (the best validation weights when the run validated,
else the last) and ``configs/metadata.json`` extended: a new version, a changelog line, and a
``ctseg_finetune`` record (parent model and version, data summary, parameters, metrics, date).
It is installed through :func:`ctseg_gui.inference.manager.install`, so it is listed by
``ctseg models list`` and the GUI's model picker, and runs through ``ctseg segment -m ID``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ctseg_gui.training.checkpoint import BEST, CHECKPOINT, atomic_save
from ctseg_gui.training.events import read_events

# Base-bundle content that the new bundle does not inherit.
SKIP = ("models", "eval", "ctseg-install.json", "__pycache__", ".ctseg-trust.json")


def default_model_id(base_id: str) -> str:
    """``<base>-ft-YYYYMMDD-HHMMSS``."""
    return f"{base_id}-ft-{time.strftime('%Y%m%d-%H%M%S')}"


def _metrics(run_dir: Path) -> dict:
    validations = [e for e in read_events(run_dir) if e["event"] == "validation"]
    if not validations:
        return {}
    best = max(validations, key=lambda e: -1.0 if e["mean_dice"] is None else e["mean_dice"])
    return {
        "first_validation": validations[0],
        "last_validation": validations[-1],
        "best_validation": best,
    }


def export_run(spec, base, run_dir: Path, mapping: dict, train, val, iteration: int):
    """Write and install the result bundle; returns ``(installed folder, model id)``."""
    import torch

    from ctseg_gui.inference.manager import install

    run_dir = Path(run_dir)
    staging = run_dir / "bundle"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(base.ref.bundle, staging, ignore=shutil.ignore_patterns(*SKIP))
    (staging / "models").mkdir()
    best = run_dir / BEST
    if best.is_file():
        weights, chosen = torch.load(best, map_location="cpu", weights_only=True), "best validation"
    else:
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
        weights, chosen = state["network"], "last iteration"
    # Same file name as the base's weights (a variant's, e.g. model_lowres.pt), with the variant's
    # config switches written into the new bundle's config: the variant becomes its default.
    relative = base.plan.weights.resolve().relative_to(base.ref.bundle.resolve())
    atomic_save(weights, staging / relative)
    _bake_overrides(staging, base)

    metadata_file = staging / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
    parent_version = str(metadata.get("version", "0.0.0"))
    stamp = time.strftime("%Y%m%d%H%M%S")
    model_id = spec.install_as or default_model_id(base.model_id)
    version = f"{parent_version}+ft{stamp}"
    metadata["version"] = version
    changelog = metadata.get("changelog") if isinstance(metadata.get("changelog"), dict) else {}
    metadata["changelog"] = {version: f"fine-tuned from {base.model_id} {parent_version}"}
    metadata["changelog"].update(changelog)
    metadata["name"] = f"{metadata.get('name', base.model_id)} (fine-tuned)"
    metadata["ctseg_finetune"] = {
        "parent_model": base.model_id,
        "parent_bundle": str(base.ref.bundle),
        "parent_variant": base.ref.variant,
        "parent_version": parent_version,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "weights": f"{chosen} ({iteration} iterations run)",
        "data": {
            "train_cases": len(train),
            "val_cases": len(val),
            "train": [c["image"] for c in train],
            "val": [c["image"] for c in val],
            "label_map": {str(k): v for k, v in mapping.items()},
        },
        "parameters": spec.to_json(),
        "metrics": _metrics(run_dir),
    }
    metadata_file.write_text(json.dumps(metadata, indent=2))
    installed = install(staging, model_id)
    shutil.rmtree(staging, ignore_errors=True)
    return installed.path, model_id


def _bake_overrides(bundle: Path, base) -> None:
    config_file = bundle / "configs" / "inference.json"
    if not base.ref.overrides or not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    for key, value in base.ref.overrides:
        *parents, last = key.split("#")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    config_file.write_text(json.dumps(config, indent=4))


def parent_of(bundle: Path) -> str | None:
    """The parent of a fine-tuned bundle as recorded in its metadata: its model id when that is
    installed, else its bundle folder when that still exists; None otherwise."""
    from ctseg_gui.inference.manager import installed_path

    try:
        metadata = json.loads((Path(bundle) / "configs" / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    record = metadata.get("ctseg_finetune")
    if not isinstance(record, dict):
        return None
    parent = record.get("parent_model")
    if parent and installed_path(parent) is not None:
        return parent
    folder = record.get("parent_bundle")
    return folder if folder and Path(folder).is_dir() else None
