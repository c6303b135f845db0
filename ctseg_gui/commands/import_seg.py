"""``ctseg import-seg SEG.dcm DICOM_DIR -o LABELS.nii.gz``: a DICOM SEG back to a label map."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seg", help="DICOM SEG file")
    parser.add_argument("dicom_dir", help="folder of the CT series the SEG references")
    parser.add_argument("-o", "--output", required=True, help="label map to write (.nii.gz...)")
    parser.add_argument("--series", metavar="UID", help="series of the folder (default: the SEG's)")


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.io.dicom_seg import import_seg
    from ctseg_gui.io.labels import write_label_map

    labels = import_seg(args.seg, args.dicom_dir, series_uid=args.series)
    path = write_label_map(labels, args.output)
    print(f"{path}: {len(labels.present_values())} labels from {args.seg}")
    return 0
