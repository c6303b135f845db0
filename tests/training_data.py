"""Training cases for tests and benchmarks, cut from the real abdomen CT and its reference labels.

The reference label map (TotalSegmentator v1, spleen = 1) covers the whole CT; the spleen lies in
its top 30 slices, so a slab of those keeps training tests small while every crop still holds CT
anatomy and real spleen voxels.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CT = DATA / "ct" / "abdomen_3mm.nii.gz"
LABELS = DATA / "labels" / "abdomen_3mm_totalseg_v1.nii.gz"
#: Slices (z index range of the file) that hold the whole spleen.
SPLEEN_SLAB = (80, 112)


def spleen_slab_case(folder: Path, slab: tuple[int, int] = SPLEEN_SLAB) -> dict:
    """Write the CT and label slab (same geometry as the files, cut in z) under ``folder``."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    case = {}
    for key, source in (("image", CT), ("label", LABELS)):
        image = sitk.ReadImage(str(source))
        size = list(image.GetSize())
        cut = sitk.RegionOfInterest(image, [size[0], size[1], slab[1] - slab[0]], [0, 0, slab[0]])
        target = folder / f"{key}.nii.gz"
        sitk.WriteImage(cut, str(target))
        case[key] = str(target)
    return case


def whole_case() -> dict:
    """The full CT with its reference labels."""
    return {"image": str(CT), "label": str(LABELS)}


def write_spec(path: Path, **values) -> Path:
    """Write a spec file (values as given) and return its path."""
    path = Path(path)
    path.write_text(json.dumps(values, indent=1))
    return path
