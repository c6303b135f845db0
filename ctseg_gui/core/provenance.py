"""Where a label map came from: model, arithmetic, input, human edits, app and date.

A :class:`Provenance` travels with its :class:`~ctseg_gui.core.labels.LabelMap` (attribute
``provenance``). The engine sets the model part where a model runs; the edit history supplies the
clicks and edits summary; every export (NIfTI sidecar, DICOM SEG, RTSTRUCT) writes the record,
completed by :func:`complete` with the input's identity, the app version and the date.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Edit-history descriptions that count as clicks (interactive/clicks.py) and as model results.
CLICK_STEPS = ("positive click", "negative click")
MODEL_STEPS = ("model result",)


@dataclass(frozen=True)
class Provenance:
    """The provenance record of one label map.

    Parameters
    ----------
    model_id
        Catalog or built-in model id (empty for a bare bundle folder or hand-drawn labels).
    model_name
        Display name, with the variant (``wholebody (highres)``).
    model_version
        The bundle's or the catalog's version string.
    variant
        ``highres`` / ``lowres``..., or empty.
    backend
        What ran the network: ``torch``, ``onnxruntime``, ... (``numpy`` for the built-in model).
    precision
        The precision mode asked for (``auto``, ``fp32``, ``reduced``) and the arithmetic it gave,
        e.g. ``auto (float32)``.
    device
        ``cpu`` or ``cuda``.
    input
        ``{"series_uid": ...}`` for DICOM input, ``{"sha256": ..., "file": ...}`` for files.
    clicks
        Interactive clicks that changed the labels (undone ones not counted).
    edits
        Manual edit steps by kind (``{"paint": 3, "erase": 1}``), undone ones not counted.
    app_version
        ``ctseg-gui <version>`` that wrote the export.
    created
        ISO 8601 UTC time of the export.
    """

    model_id: str = ""
    model_name: str = ""
    model_version: str = ""
    variant: str = ""
    backend: str = ""
    precision: str = ""
    device: str = ""
    input: dict[str, str] = field(default_factory=dict)
    clicks: int = 0
    edits: dict[str, int] = field(default_factory=dict)
    app_version: str = ""
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        """A plain dict (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Provenance:
        """Parse :meth:`to_json`'s form, ignoring keys this version does not know."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["input"] = {str(k): str(v) for k, v in dict(known.get("input") or {}).items()}
        known["edits"] = {str(k): int(v) for k, v in dict(known.get("edits") or {}).items()}
        known["clicks"] = int(known.get("clicks") or 0)
        return cls(**known)

    @property
    def algorithm_name(self) -> str:
        """The model's name for DICOM algorithm identification (``manual`` when none ran)."""
        return self.model_name or self.model_id or "manual"

    def summary(self) -> str:
        """One line for a DICOM description field (64 characters are kept by LO fields)."""
        parts = [self.algorithm_name]
        if self.model_version:
            parts.append(f"v{self.model_version}")
        if self.backend:
            parts.append(f"{self.backend}/{self.precision or '?'}")
        edited = sum(self.edits.values())
        if self.clicks or edited:
            parts.append(f"{self.clicks} clicks, {edited} edits")
        return " ".join(parts)


def edit_summary(tally: Counter[str] | dict[str, int]) -> tuple[int, dict[str, int]]:
    """Split an edit-history tally (description -> steps) into clicks and manual edits."""
    clicks = sum(int(tally.get(name, 0)) for name in CLICK_STEPS)
    edits = {
        str(name): int(count)
        for name, count in sorted(tally.items())
        if count > 0 and name not in CLICK_STEPS and name not in MODEL_STEPS
    }
    return clicks, edits


def input_identity(metadata: dict[str, Any]) -> dict[str, str]:
    """The series UID of a DICOM image, else the SHA-256 of its source file.

    Anonymised series without a UID fall back to a checksum of their slice files.
    """
    uid = str(metadata.get("series_uid", ""))
    if uid and not uid.startswith("no-uid:"):
        return {"series_uid": uid}
    files = metadata.get("files") or []
    source = metadata.get("source")
    paths = [Path(f) for f in files] if files else ([Path(source)] if source else [])
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return {}
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(chunk)
    return {"sha256": digest.hexdigest(), "file": str(source or paths[0])}


def complete(
    record: Provenance | None,
    metadata: dict[str, Any],
    tally: Counter[str] | dict[str, int] | None = None,
) -> Provenance:
    """``record`` (or an empty, hand-made one) with input, edits, app version and date filled in.

    Parameters
    ----------
    record
        What the model run recorded, or None for labels no model made.
    metadata
        The image's metadata (``series_uid``, ``source``, ``files``).
    tally
        The edit history's steps by description; None keeps the record's own counts.
    """
    from ctseg_gui import __version__

    record = record or Provenance()
    changes: dict[str, Any] = {
        "app_version": f"ctseg-gui {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not record.input:
        changes["input"] = input_identity(metadata)
    if tally is not None:
        changes["clicks"], changes["edits"] = edit_summary(tally)
    return replace(record, **changes)
