"""``ctseg export-seg LABELS DICOM_DIR -o SEG.dcm``: labels as a DICOM SEG over their series."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", help="label map on the series grid (.nii.gz...; sidecar read)")
    parser.add_argument("dicom_dir", help="folder of the CT series the labels were made on")
    parser.add_argument("-o", "--output", required=True, help="the SEG file to write (.dcm)")
    parser.add_argument(
        "--series", metavar="UID", help="series of the folder (default: largest CT)"
    )


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.io.dicom_export import referenced_series
    from ctseg_gui.io.dicom_seg import export_seg
    from ctseg_gui.io.labels import read_label_map

    series = referenced_series(args.dicom_dir, args.series)
    labels = read_label_map(args.labels, series.grid)
    path = export_seg(labels, args.dicom_dir, args.output, series=series)
    print(
        f"{path}: DICOM SEG, {len(labels.present_values())} segments over series {series.entry.uid}"
    )
    return 0
