"""Training cases for tests and benchmarks, cut from the real abdomen CT and its reference labels.

The reference label map (TotalSegmentator v1, spleen = 1) covers the whole CT; the spleen lies in
its top 30 slices and one corner, so a box around it keeps training tests small while every crop still holds CT
anatomy and real spleen voxels.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CT = DATA / "ct" / "abdomen_3mm.nii.gz"
LABELS = DATA / "labels" / "abdomen_3mm_totalseg_v1.nii.gz"
#: Index ranges (x, y, z of the file) of a 64 x 64 x 32 box that holds the whole spleen.
SPLEEN_BOX = ((0, 64), (12, 76), (80, 112))


def spleen_slab_case(folder: Path, box=SPLEEN_BOX) -> dict:
    """Write the CT and label cut to ``box`` (same geometry as the files) under ``folder``."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    case = {}
    for key, source in (("image", CT), ("label", LABELS)):
        image = sitk.ReadImage(str(source))
        cut = sitk.RegionOfInterest(image, [b - a for a, b in box], [a for a, _ in box])
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
