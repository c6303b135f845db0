"""``ctseg stats IMAGE LABELS -o stats.csv``: volume and HU statistics per structure."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the CT the labels belong to")
    parser.add_argument("labels", help="label map on the CT's grid (NIfTI, NRRD, MHA)")
    parser.add_argument("-o", "--output", help="CSV file to write (default: print to stdout)")
    parser.add_argument(
        "--names",
        metavar="JSON|wholebody",
        help="label names: a label-table or {value: name} JSON, or 'wholebody' for the 104 "
        "TotalSegmentator v1 structures (default: the labels' sidecar, else generic names)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.core.label_tables import load_label_table, wholebody_table
    from ctseg_gui.core.stats import structure_statistics, write_stats_csv
    from ctseg_gui.io import read_image, read_label_map
    from ctseg_gui.resources import resource_path

    table = None
    if args.names == "wholebody":
        table = wholebody_table(resource_path())
    elif args.names:
        table = load_label_table(args.names)
    image = read_image(args.image)
    rows = structure_statistics(read_label_map(args.labels, image, table))
    try:
        out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    except OSError as error:
        raise CtsegError(f"cannot write: {error.strerror or error}", args.output) from error
    try:
        write_stats_csv(rows, out)
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output:
        print(f"wrote {args.output}: {len(rows)} structures", file=sys.stderr)
    return 0
