"""What a batch command runs on: the cases of a folder of CTs, an MSD folder or a datalist.

A *case* is one CT to read with :func:`~ctseg_gui.io.read_image`: an image file or a DICOM
series folder, plus the name its outputs take. :func:`find_cases` accepts

- a single CT (image file, DICOM file, a folder holding DICOM files itself, or one whose only
  content is one folder tree of DICOM files): one case;
- a folder of CTs: each ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` file and
  each sub-folder holding DICOM files is one case, in name order;
- an MSD task folder: the files of ``imagesTs`` (else ``imagesTr``);
- a datalist JSON: ``[{"image": ..., "label": ...}, ...]`` (or plain paths), or MONAI's
  ``{"testing": [...]}`` / ``{"validation": [...]}`` / ``{"training": [...]}`` (and the MSD
  ``dataset.json``'s ``"test"``), paths relative to the JSON file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.io import dicom
from ctseg_gui.io.images import FORMATS, image_suffix

# Which list of a MONAI datalist a segmentation runs on when the caller does not say: cases kept
# for testing first, the training cases last.
DATALIST_KEYS = ("testing", "test", "validation", "training")


@dataclass(frozen=True)
class Case:
    """One CT of a batch: where it is, the name of its outputs, its reference label if any."""

    name: str
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class CaseList:
    """The cases found in an input, and whether the input was a batch (folder or datalist)."""

    cases: list[Case]
    batch: bool
    source: str  # "image", "folder", "msd", "datalist[<key>]"


def case_name(path: Path) -> str:
    """Output stem of a case: the file name without its image suffix, or the folder name."""
    suffix = image_suffix(path)
    if suffix in FORMATS and not path.is_dir():
        return path.name[: -len(suffix)]
    return path.name


def _is_image_file(path: Path) -> bool:
    # Hidden files include the macOS "._x.nii.gz" forks MSD archives are known to carry.
    return path.is_file() and not path.name.startswith(".") and image_suffix(path) in FORMATS


def _holds_dicom(folder: Path, limit: int = 200) -> bool:
    """Whether ``folder`` (or a sub-folder) holds a DICOM file; looks at ``limit`` files at most."""
    for seen, path in enumerate(p for p in folder.rglob("*") if p.is_file()):
        if seen >= limit:
            return False
        if dicom.is_dicom_file(path):
            return True
    return False


def _direct_dicom(folder: Path) -> bool:
    return any(p.is_file() and dicom.is_dicom_file(p) for p in sorted(folder.iterdir())[:50])


def _unique(cases: list[Case]) -> list[Case]:
    """Give cases that share a name (same file name in two folders) distinct output names."""
    seen: dict[str, int] = {}
    result = []
    for case in cases:
        count = seen.get(case.name, 0) + 1
        seen[case.name] = count
        name = case.name if count == 1 else f"{case.name}_{count}"
        result.append(Case(name, case.image, case.label))
    return result


def folder_cases(folder: Path, exclude: Path | None = None) -> list[Case]:
    """Each image file and each DICOM series folder directly inside ``folder``, in name order."""
    cases = []
    skip = exclude.resolve() if exclude is not None else None
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or (skip is not None and path.resolve() == skip):
            continue
        if _is_image_file(path) or (path.is_dir() and _holds_dicom(path)):
            cases.append(Case(case_name(path), path))
    return _unique(cases)


def read_datalist(path: Path, key: str | None = None) -> tuple[list[Case], str]:
    """The cases of a datalist JSON and the key they came from (``""`` for a plain list).

    Raises
    ------
    CtsegError
        Unreadable JSON, no usable list, an entry without an image, or a missing key.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CtsegError(f"cannot read the datalist ({error})", path) from error
    used = ""
    if isinstance(data, dict):
        if key is not None:
            if key not in data:
                raise CtsegError(f"the datalist has no '{key}' list", path)
            used = key
        else:
            used = next((k for k in DATALIST_KEYS if data.get(k)), "")
            if not used:
                raise CtsegError(
                    "the datalist has none of the lists " + ", ".join(DATALIST_KEYS), path
                )
        data = data[used]
    elif key is not None:
        raise CtsegError(f"the datalist is a plain list, it has no '{key}' list", path)
    if not isinstance(data, list):
        raise CtsegError("the datalist is not a list of cases", path)
    cases = []
    for index, entry in enumerate(data):
        image, label = (entry, None) if isinstance(entry, str) else (None, None)
        if isinstance(entry, dict):
            image, label = entry.get("image"), entry.get("label")
        if isinstance(image, list) and len(image) == 1:
            image = image[0]
        if not isinstance(image, str) or not image:
            raise CtsegError(f"case {index} of the datalist has no image path", path)
        image_path = (path.parent / image).resolve()
        label_path = (path.parent / label).resolve() if isinstance(label, str) else None
        cases.append(Case(case_name(image_path), image_path, label_path))
    return _unique(cases), used


def find_cases(
    source: str | Path, exclude: Path | None = None, datalist_key: str | None = None
) -> CaseList:
    """The cases of ``source``: a CT, a folder of CTs, an MSD folder or a datalist JSON.

    Parameters
    ----------
    source
        The input as the user gave it.
    exclude
        A folder never taken as a case (the output folder when it lies inside ``source``).
    datalist_key
        The list of a MONAI datalist to use; default the first of :data:`DATALIST_KEYS`.

    Raises
    ------
    CtsegError
        A missing input, a bad datalist, or a folder with no CT in it.
    """
    path = Path(source)
    if not path.exists():
        raise CtsegError("does not exist", path)
    if path.is_file() and path.name.lower().endswith(".json"):
        cases, key = read_datalist(path, datalist_key)
        if not cases:
            raise CtsegError("the datalist lists no cases", path)
        return CaseList(cases, True, f"datalist[{key}]" if key else "datalist")
    if path.is_file() or _direct_dicom(path):
        # One CT; read_image says what is wrong with it if anything is.
        return CaseList([Case(case_name(path), path)], False, "image")
    for sub in ("imagesTs", "imagesTr"):
        if (path / sub).is_dir():
            cases = [c for c in folder_cases(path / sub) if not c.image.is_dir()]
            if cases:
                return CaseList(cases, True, "msd")
    cases = folder_cases(path, exclude)
    if len(cases) == 1 and cases[0].image.is_dir() and not any(map(_is_image_file, path.iterdir())):
        # PATIENT/STUDY/SERIES exports: one CT whose series read_image picks from the tree.
        return CaseList([Case(case_name(path), path)], False, "image")
    if not cases:
        raise CtsegError(
            "holds no CT: no DICOM files, no sub-folders with DICOM series and no "
            + ", ".join(sorted(FORMATS))
            + " files",
            path,
        )
    return CaseList(cases, True, "folder")
