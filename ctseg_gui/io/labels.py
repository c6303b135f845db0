"""Label map export and import, with the JSON label-table sidecar.

For ``X.nii.gz`` the sidecar is ``X.labels.json`` holding
``{"labels": [{"value": 1, "name": "spleen", "color": [r, g, b]}, ...], "provenance": {...}}``
(see :mod:`ctseg_gui.core.provenance`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.labels import LabelMap, LabelTable, smallest_label_dtype
from ctseg_gui.core.provenance import CLICK_STEPS, Provenance, complete
from ctseg_gui.core.volume import Volume
from ctseg_gui.io.images import FORMATS, _write_nifti, image_suffix, read_image, write_image


def sidecar_path(path: str | Path) -> Path:
    """``X.labels.json`` beside ``X.nii.gz`` (or ``X.nrrd``...)."""
    path = Path(path)
    stem = path.name[: -len(image_suffix(path))] if image_suffix(path) else path.stem
    return path.with_name(f"{stem}.labels.json")


def write_label_map(labels: LabelMap, path: str | Path) -> Path:
    """Write labels on exactly the image's grid plus the label-table sidecar.

    NIfTI output keeps the image's affine (the file's own when the image came from NIfTI), sets
    qform and sform codes to scanner, and stores the smallest unsigned integer type that fits.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix not in FORMATS:
        raise CtsegError("unsupported label format (use .nii.gz, .nii, .nrrd or .mha)", path)
    top = int(labels.array.max()) if labels.array.size else 0
    array = labels.array.astype(smallest_label_dtype(top), copy=False)
    if FORMATS[suffix] == "NIfTI":
        _write_nifti(labels.image, path, array, intent="label")
    else:
        write_image(labels.image.with_array(array), path)
    sidecar = sidecar_path(path)
    record = complete(labels.provenance, labels.image.metadata, labels.edit_tally)
    try:
        sidecar.write_text(
            json.dumps({**labels.table.to_json(), "provenance": record.to_json()}, indent=1) + "\n"
        )
    except OSError as error:
        raise CtsegError(f"cannot write label table: {error.strerror or error}", sidecar) from error
    return path


def read_label_table(path: str | Path) -> LabelTable | None:
    """The sidecar table of a label file, or ``None`` when there is none."""
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return None
    try:
        return LabelTable.from_json(json.loads(sidecar.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise CtsegError(f"damaged label table ({error})", sidecar) from error


def read_provenance(path: str | Path) -> Provenance | None:
    """The provenance recorded in a label file's sidecar, or ``None`` when there is none."""
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return None
    try:
        data = json.loads(sidecar.read_text()).get("provenance")
        return Provenance.from_json(data) if data else None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CtsegError(f"damaged provenance record ({error})", sidecar) from error


def read_label_map(path: str | Path, image: Volume, table: LabelTable | None = None) -> LabelMap:
    """Read a label file onto ``image``, refusing any grid mismatch with the reason.

    The table comes from ``table`` when given, else from the sidecar, else generic names. The
    sidecar's provenance comes along, its clicks and edits counted on from where they were.
    """
    labels = LabelMap.from_volume(
        read_image(path), image, table or read_label_table(path), source=str(path)
    )
    attach_provenance(labels, read_provenance(path))
    return labels


def attach_provenance(labels: LabelMap, record: Provenance | None) -> None:
    """Give ``labels`` a recorded provenance, its edit counts becoming the edit tally."""
    if record is None:
        return
    labels.provenance = record
    labels.edit_tally = Counter(record.edits)
    if record.clicks:
        labels.edit_tally[CLICK_STEPS[0]] += record.clicks
