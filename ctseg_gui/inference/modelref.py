"""How a model is named: a catalog id (+ variant), a bundle folder, or the built-in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctseg_gui.inference.errors import BundleError, ModelNotFoundError

# Models that need no bundle: the worker engineer's HU-based tissue model.
BUILTIN_MODELS = {"ct-tissues": "CT tissues (body, air/lung, fat, soft tissue, bone; no weights)"}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what :func:`~ctseg_gui.inference.engine.segment_volume` runs.

    Parameters
    ----------
    model_id
        Catalog or built-in id (None for a bare bundle folder).
    bundle
        Absolute bundle folder (None for built-ins).
    variant
        Variant name (``highres`` / ``lowres``...), or None.
    weights
        Bundle-relative weights file forced by the variant, or None (the config decides).
    overrides
        ``(config id, value)`` pairs applied to the bundle config (e.g. the whole-body
        ``displayable_configs#highres``).
    """

    model_id: str | None = None
    bundle: Path | None = None
    variant: str | None = None
    weights: str | None = None
    overrides: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def builtin(self) -> bool:
        """Whether this is a built-in model that needs no bundle."""
        return self.bundle is None and self.model_id in BUILTIN_MODELS

    @property
    def name(self) -> str:
        """Short name for messages."""
        base = self.model_id or (self.bundle.name if self.bundle else "?")
        return f"{base} ({self.variant})" if self.variant else base


def bundle_config_file(bundle: Path) -> Path:
    """``configs/inference.json`` (or ``.yaml``) of a bundle folder; error naming the folder."""
    for name in ("inference.json", "inference.yaml", "inference.yml"):
        if (bundle / "configs" / name).is_file():
            return bundle / "configs" / name
    if not bundle.is_dir():
        raise BundleError("bundle folder does not exist", bundle)
    raise BundleError("not a MONAI bundle: configs/inference.json is missing", bundle)


def _variant_overrides(bundle: Path, variant: str | None) -> tuple[tuple[str, Any], ...]:
    """Map ``highres`` / ``lowres`` onto a bundle's ``displayable_configs#highres`` switch."""
    if variant is None:
        return ()
    config_file = bundle_config_file(bundle)
    highres = None
    if config_file.suffix == ".json":
        try:
            highres = json.loads(config_file.read_text()).get("displayable_configs", {})
            highres = highres.get("highres") if isinstance(highres, dict) else None
        except ValueError as error:
            raise BundleError(f"config is not valid JSON ({error})", config_file) from error
    if variant in ("highres", "lowres") and highres is not None:
        return (("displayable_configs#highres", variant == "highres"),)
    raise BundleError(
        f"this bundle has no variant {variant!r} (only bundles with a displayable_configs#highres "
        "switch offer highres / lowres)",
        config_file,
    )


def resolve_model(
    model_id: str | None = None,
    bundle: str | Path | None = None,
    variant: str | None = None,
) -> ModelRef:
    """Turn what the user typed into a :class:`ModelRef`.

    Parameters
    ----------
    model_id
        Built-in (``ct-tissues``) or catalog id; the model must be installed.
    bundle
        A bundle folder to run as is (takes precedence over ``model_id``).
    variant
        ``highres`` / ``lowres`` or another variant named in the manifest.

    Raises
    ------
    ModelNotFoundError
        Unknown id, or a catalog model that is not installed.
    BundleError
        The folder is not a bundle or has no such variant.
    """
    if bundle is not None:
        folder = Path(bundle).expanduser().resolve()
        bundle_config_file(folder)
        return ModelRef(
            model_id=None,
            bundle=folder,
            variant=variant,
            overrides=_variant_overrides(folder, variant),
        )
    model_id = model_id or "ct-tissues"
    if model_id in BUILTIN_MODELS:
        if variant:
            raise ModelNotFoundError(f"the built-in model {model_id} has no variants")
        return ModelRef(model_id=model_id)
    from ctseg_gui.inference.catalog import get_manifest, load_catalog
    from ctseg_gui.inference.manager import installed_path

    folder = installed_path(model_id)
    if model_id not in load_catalog() and folder is not None:
        # An installed bundle the catalog does not know (e.g. a fine-tuned model): run it as is.
        return ModelRef(
            model_id=model_id,
            bundle=folder,
            variant=variant,
            overrides=_variant_overrides(folder, variant),
        )
    manifest = get_manifest(model_id)
    chosen = manifest.variant(variant)
    if folder is None:
        raise ModelNotFoundError(
            f"model {model_id} is not installed; install it with "
            f"`ctseg models install {model_id} PATH_OR_ZIP` (or --download when online)"
        )
    return ModelRef(
        model_id=model_id,
        bundle=folder,
        variant=chosen.name if chosen else None,
        weights=chosen.weights if chosen else None,
        overrides=tuple(sorted(chosen.overrides.items())) if chosen else (),
    )
