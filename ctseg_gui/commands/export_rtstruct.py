"""``ctseg export-rtstruct LABELS DICOM_DIR -o RT.dcm``: labels as RT structure set contours."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", help="label map on the series grid (.nii.gz...; sidecar read)")
    parser.add_argument("dicom_dir", help="folder of the CT series the labels were made on")
    parser.add_argument("-o", "--output", required=True, help="the RTSTRUCT file to write (.dcm)")
    parser.add_argument(
        "--series", metavar="UID", help="series of the folder (default: largest CT)"
    )


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.io.dicom_export import referenced_series
    from ctseg_gui.io.labels import read_label_map
    from ctseg_gui.io.rtstruct import export_rtstruct

    series = referenced_series(args.dicom_dir, args.series)
    labels = read_label_map(args.labels, series.grid)
    path = export_rtstruct(labels, args.dicom_dir, args.output, series=series)
    print(f"{path}: RTSTRUCT, {len(labels.present_values())} ROIs over series {series.entry.uid}")
    return 0
