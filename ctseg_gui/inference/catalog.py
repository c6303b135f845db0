"""The model catalog: one JSON manifest per model in the shipped ``models/`` folder.

A manifest says what a model is (display name, task, labels, licence), where its bundle comes from
(MONAI model-zoo hosting, NGC, Hugging Face), which files it has (checksums where published) and
which variants it offers (for example the whole-body model's ``highres`` / ``lowres``). Models that
are published as weights plus a recipe rather than as bundles (Deepgrow, the self-supervised UNETR)
carry their ``inference.json`` content in the manifest's ``config`` key, in MONAI's config syntax.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ctseg_gui.core.labels import LabelTable
from ctseg_gui.inference.errors import ModelNotFoundError


@dataclass(frozen=True)
class Variant:
    """One way to run a model (weights file and config overrides)."""

    name: str
    description: str = ""
    weights: str | None = None  # bundle-relative path; None: what the config says
    overrides: dict[str, Any] = field(default_factory=dict)  # config id -> value
    spacing_mm: tuple[float, ...] | None = None


@dataclass
class ModelManifest:
    """A catalog entry parsed from ``models/<id>.json``."""

    id: str
    display_name: str
    task: str
    kind: str  # "bundle" (model-zoo bundle) or "recipe" (weights + config carried here)
    bundle_name: str
    version: str
    sources: list[dict[str, Any]]
    files: list[dict[str, Any]]
    labels: dict[int, str]
    licence: str
    variants: dict[str, Variant]
    default_variant: str | None
    config: dict[str, Any] | None
    raw: dict[str, Any]
    path: Path

    def label_table(self) -> LabelTable:
        """Names, colours and groups of the output labels (background excluded).

        A manifest whose ``labels_file`` is a full label table (``{"labels": [...]}``, e.g. the
        whole-body table with groups) gives that table; plain names get generated colours.
        """
        table_file = self.raw.get("labels_file")
        if table_file:
            from ctseg_gui.core.label_tables import load_label_table
            from ctseg_gui.resources import resource_path

            return load_label_table(resource_path(table_file))
        return LabelTable.from_names({v: n for v, n in self.labels.items() if v != 0})

    @property
    def archive_sources(self) -> list[dict[str, Any]]:
        """Sources that are bundle archives to download (not pages for a manual download)."""
        return [s for s in self.sources if s.get("archive", True)]

    def variant(self, name: str | None) -> Variant | None:
        """The named variant (the default when ``name`` is None); error naming the choices."""
        if not self.variants:
            if name:
                raise ModelNotFoundError(f"model {self.id} has no variants (asked for {name!r})")
            return None
        name = name or self.default_variant or next(iter(self.variants))
        if name not in self.variants:
            raise ModelNotFoundError(
                f"model {self.id} has no variant {name!r}; choose one of "
                + ", ".join(sorted(self.variants))
            )
        return self.variants[name]


def _labels(data: dict[str, Any], manifest_path: Path) -> dict[int, str]:
    if "labels_file" in data:
        from ctseg_gui.resources import resource_path

        names = json.loads(resource_path(data["labels_file"]).read_text())
        if isinstance(names, dict) and "labels" in names:  # a label table with colours
            return {int(e["value"]): str(e["name"]) for e in names["labels"]}
        if isinstance(names, dict):  # {"1": "spleen", ...}
            return {int(k): str(v) for k, v in names.items()}
        return {i + 1: str(n) for i, n in enumerate(names)}
    return {int(k): str(v) for k, v in data.get("labels", {}).items()}


def parse_manifest(path: Path) -> ModelManifest:
    """Read one manifest file."""
    data = json.loads(Path(path).read_text())
    variants = {
        name: Variant(
            name=name,
            description=str(v.get("description", "")),
            weights=v.get("weights"),
            overrides=dict(v.get("overrides", {})),
            spacing_mm=tuple(v["spacing_mm"]) if v.get("spacing_mm") else None,
        )
        for name, v in data.get("variants", {}).items()
    }
    bundle = data.get("bundle", {})
    return ModelManifest(
        id=data["id"],
        display_name=data.get("display_name", data["id"]),
        task=data.get("task", ""),
        kind=data.get("kind", "bundle"),
        bundle_name=bundle.get("name", data["id"]),
        version=str(bundle.get("version", "unknown")),
        sources=list(data.get("sources", [])),
        files=list(data.get("files", [])),
        labels=_labels(data, path),
        licence=data.get("licence", "unknown"),
        variants=variants,
        default_variant=data.get("default_variant"),
        config=data.get("config"),
        raw=data,
        path=Path(path),
    )


@cache
def load_catalog() -> dict[str, ModelManifest]:
    """All manifests shipped in ``models/``, keyed by id."""
    from ctseg_gui.resources import models_path

    catalog = {}
    for path in sorted(models_path().glob("*.json")):
        manifest = parse_manifest(path)
        catalog[manifest.id] = manifest
    return catalog


def get_manifest(model_id: str) -> ModelManifest:
    """The manifest of ``model_id``; the error lists the known ids."""
    catalog = load_catalog()
    if model_id not in catalog:
        known = ", ".join(["ct-tissues", *sorted(catalog)])
        raise ModelNotFoundError(f"unknown model {model_id!r}; known models: {known}")
    return catalog[model_id]
