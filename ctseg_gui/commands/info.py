"""``ctseg info PATH [--json]``: series list of a DICOM folder, or facts about one image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="DICOM folder or file, NIfTI, NRRD or MetaImage file")
    parser.add_argument("--series", metavar="UID", help="describe this DICOM series in detail")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def image_facts(volume) -> dict:
    """The facts ``info`` prints for one image."""
    from ctseg_gui.core.modality import describe_modality

    low, high = volume.hu_range()
    facts = {
        "source": volume.metadata.get("source", ""),
        "format": volume.metadata.get("format", ""),
        "modality": describe_modality(volume),
        "size": list(volume.size),
        "spacing_mm": [round(s, 6) for s in volume.spacing],
        "origin_lps_mm": [round(o, 4) for o in volume.origin],
        "orientation": volume.orientation_code,
        "oblique": volume.is_oblique,
        "dtype": str(volume.array.dtype),
        "hu_range": [low, high],
    }
    for key in (
        "patient_name",
        "patient_id",
        "study_description",
        "series_description",
        "series_uid",
    ):
        if volume.metadata.get(key):
            facts[key] = volume.metadata[key]
    return facts


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.io import dicom
    from ctseg_gui.io.images import read_image

    path = Path(args.path)
    if path.is_dir() and not args.series:
        series = [s.describe() for s in dicom.scan_folder(path)]
        if args.json:
            print(json.dumps({"path": str(path), "series": series}, indent=1))
            return 0
        print(f"{path}: {len(series)} series")
        for entry in series:
            print(
                f"  [{entry['modality'] or '?'}] {entry['series_description'] or '(no description)'}"
                f"  #{entry['series_number']}  {entry['slices']} slices"
                f"  {entry['dimensions'][0]}x{entry['dimensions'][1]}"
                f"  patient {entry['patient_name'] or '?'}  study {entry['study_description']}"
                f"\n      UID {entry['series_uid']}"
            )
        return 0
    facts = image_facts(read_image(path, series_uid=args.series))
    if args.json:
        print(json.dumps(facts, indent=1))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        shown = " x ".join(str(v) for v in value) if key in ("size", "spacing_mm") else value
        print(f"{key.replace('_', ' '):<{width}}  {shown}")
    return 0
