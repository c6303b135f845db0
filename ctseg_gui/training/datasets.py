"""Training case lists: (CT, label map) pairs from a datalist, an MSD folder, or the open image.

A case is ``{"image": path, "label": path}``. Sources: a MONAI datalist JSON (a list of cases, or
an object with ``training`` / ``validation`` lists, paths relative to the file or to its
``dataset_dir``), an MSD-style folder (``imagesTr/`` + ``labelsTr/`` with the same file names), or
:func:`add_case`, which writes the current CT and its corrected labels into a training-set folder
and appends them to its ``datalist.json``. :func:`check_cases` compares every pair's grids from
the file headers (one clear error naming the file) and collects the label values used;
:func:`value_map` turns those into the table that maps file values onto model classes.
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegError, CtsegWarning, GeometryMismatchError

DATALIST = "datalist.json"


def _case(item, base: Path, source: Path) -> dict:
    if isinstance(item, dict) and "image" in item and "label" in item:
        return {
            k: str(Path(item[k]) if Path(item[k]).is_absolute() else (base / item[k]).resolve())
            for k in ("image", "label")
        }
    raise CtsegError(f'every case needs "image" and "label" (got {item!r:.80})', source)


def read_datalist(path: str | Path, section: str | None = None) -> list[dict]:
    """Cases of a datalist JSON file.

    Parameters
    ----------
    section
        ``training`` / ``validation`` for MONAI's ``{"training": [...], "validation": [...]}``
        files; None takes ``validation`` when present, else ``training`` (or the plain list).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise CtsegError(f"cannot read ({error.strerror})", path) from None
    except ValueError as error:
        raise CtsegError(f"not valid JSON ({error})", path) from None
    base = path.parent.resolve()
    if isinstance(data, dict):
        if "dataset_dir" in data:
            base = (base / data["dataset_dir"]).resolve()
        names = [section] if section else ["validation", "training"]
        found = next((data[n] for n in names if isinstance(data.get(n), list)), None)
        if found is None:
            raise CtsegError(f"no {' or '.join(repr(n) for n in names)} list of cases", path)
        data = found
    if not isinstance(data, list):
        raise CtsegError('expected a list of cases or MONAI\'s {"training": [...]}', path)
    return [_case(item, base, path) for item in data]


def read_msd_folder(folder: str | Path) -> list[dict]:
    """Cases of an MSD-style folder: ``imagesTr/X`` paired with ``labelsTr/X``."""
    folder = Path(folder)
    images, labels = folder / "imagesTr", folder / "labelsTr"
    if not images.is_dir() or not labels.is_dir():
        raise CtsegError("not an MSD-style folder (needs imagesTr/ and labelsTr/)", folder)
    cases = []
    for image in sorted(p for p in images.iterdir() if not p.name.startswith((".", "_"))):
        label = labels / image.name
        if not label.exists():
            raise CtsegError(f"no label file for {image.name} in labelsTr/", image)
        cases.append({"image": str(image.resolve()), "label": str(label.resolve())})
    if not cases:
        raise CtsegError("imagesTr/ holds no images", folder)
    return cases


def read_cases(source: str | Path, section: str | None = None) -> list[dict]:
    """Cases from a datalist JSON file or an MSD-style folder."""
    source = Path(source).expanduser()
    if source.is_dir():
        if (source / "imagesTr").is_dir():
            return read_msd_folder(source)
        if (source / DATALIST).is_file():
            return read_datalist(source / DATALIST, section)
        raise CtsegError(f"neither an MSD-style folder nor a folder with {DATALIST}", source)
    if not source.exists():
        raise CtsegError("does not exist", source)
    return read_datalist(source, section)


def split_cases(cases: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, validation)``: a seeded shuffle, at least one case on each side when possible."""
    if fraction <= 0 or len(cases) < 2:
        return list(cases), []
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    count = min(len(cases) - 1, max(1, round(fraction * len(cases))))
    val = sorted(order[:count])
    return [c for i, c in enumerate(cases) if i not in val], [cases[i] for i in val]


def check_grid(image: str | Path, label: str | Path) -> tuple[int, ...]:
    """Raise :class:`GeometryMismatchError` naming ``label`` unless it lies on ``image``'s grid.

    Returns the image size (voxels per axis).
    """
    from ctseg_gui.io.images import read_header

    a, b = read_header(image), read_header(label)
    size_a, size_b = tuple(a.GetSize()), tuple(b.GetSize())
    if size_a != size_b:
        raise GeometryMismatchError(f"label size {size_b} differs from the image's {size_a}", label)
    for what, x, y, tol in (
        ("spacing", a.GetSpacing(), b.GetSpacing(), 1e-3),
        ("origin", a.GetOrigin(), b.GetOrigin(), 1e-2),
        ("direction", a.GetDirection(), b.GetDirection(), 1e-3),
    ):
        if not np.allclose(x, y, atol=tol):
            raise GeometryMismatchError(
                f"label {what} {tuple(round(v, 3) for v in y)} differs from the image's "
                f"{tuple(round(v, 3) for v in x)}",
                label,
            )
    return size_a


def label_values(path: str | Path) -> set[int]:
    """The integer values in a label file."""
    from ctseg_gui.io._sitk import sitk

    array = sitk().GetArrayFromImage(sitk().ReadImage(str(path)))
    values = np.unique(array)
    if not np.allclose(values, np.round(values)):
        raise CtsegError("label file holds non-integer values", path)
    return {int(v) for v in values}


def check_cases(cases: list[dict]) -> tuple[set[int], list[tuple[int, ...]]]:
    """Check every pair (files exist, grids agree); ``(label values used, image sizes)``."""
    values: set[int] = set()
    sizes = []
    for case in cases:
        for key in ("image", "label"):
            if not Path(case[key]).exists():
                raise CtsegError(f"{key} file does not exist", case[key])
        sizes.append(check_grid(case["image"], case["label"]))
        values |= label_values(case["label"])
    return values, sizes


def value_map(
    values: set[int], classes: dict[int, str], table: dict[str, int] | None
) -> dict[int, int]:
    """File value -> model class for every value found; unmapped values become 0 (with a warning).

    ``table`` is the user's ``{"<file value>": class}``; None keeps values as they are.
    """
    mapping = {}
    for value in sorted(values):
        if table is None:
            mapping[value] = value if value in classes else 0
        else:
            mapping[value] = int(table.get(str(value), 0))
    for source, target in mapping.items():
        if target not in classes:
            raise CtsegError(
                f"label_map sends {source} to class {target}, which the model does not have "
                f"(classes {min(classes)}..{max(classes)})"
            )
    ignored = sorted(v for v, t in mapping.items() if t == 0 and v != 0)
    if ignored:
        shown = ", ".join(map(str, ignored[:12])) + (", ..." if len(ignored) > 12 else "")
        warnings.warn(
            f"label values {shown} ({len(ignored)} in all) map to no model class and are "
            "treated as background",
            CtsegWarning,
            stacklevel=2,
        )
    return mapping


def add_case(training_set: str | Path, volume, labels, name: str | None = None) -> dict:
    """Add the current CT and its corrected labels to a training-set folder.

    Writes ``imagesTr/<name>.nii.gz`` and ``labelsTr/<name>.nii.gz`` (MSD layout, so the folder is
    also a valid ``CASES`` source) and appends the case to ``datalist.json``.

    Parameters
    ----------
    volume, labels
        A :class:`~ctseg_gui.core.volume.Volume` and its :class:`~ctseg_gui.core.labels.LabelMap`.
    name
        File name stem; default ``case_NNN``, the next free number.
    """
    from ctseg_gui.io import write_image, write_label_map

    folder = Path(training_set).expanduser()
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(exist_ok=True)
    listing = folder / DATALIST
    entries = json.loads(listing.read_text()).get("training", []) if listing.is_file() else []
    if name is None:
        used = {Path(e["image"]).name for e in entries}
        number = len(entries) + 1
        while f"case_{number:03d}.nii.gz" in used:
            number += 1
        name = f"case_{number:03d}"
    image = folder / "imagesTr" / f"{name}.nii.gz"
    label = folder / "labelsTr" / f"{name}.nii.gz"
    write_image(volume, image)
    write_label_map(labels, label)
    case = {"image": f"imagesTr/{image.name}", "label": f"labelsTr/{label.name}"}
    entries = [e for e in entries if e["image"] != case["image"]] + [case]
    temporary = listing.with_suffix(".tmp")
    temporary.write_text(json.dumps({"training": entries}, indent=1))
    temporary.replace(listing)
    return {"image": str(image), "label": str(label)}
