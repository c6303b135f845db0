"""``ctseg convert PATH OUT``: any supported input to NIfTI, NRRD or MetaImage."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="DICOM folder or file, NIfTI, NRRD or MetaImage file")
    parser.add_argument("out", help="output file: .nii.gz, .nii, .nrrd, .mha or .mhd")
    parser.add_argument("--series", metavar="UID", help="DICOM series to convert")


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.io.images import read_image, write_image

    volume = read_image(args.path, series_uid=args.series)
    out = write_image(volume, args.out)
    print(f"wrote {out} ({' x '.join(map(str, volume.size))}, {volume.orientation_code})")
    return 0
