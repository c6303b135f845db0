"""``ctseg clicks-eval IMAGE LABELS --label-value N --clicks K``: simulated click refinement.

Places clicks by the Deepgrow / nnInteractive protocol (interior of the largest error region,
positive for missed tissue, negative for false tissue) and reports Dice and latency after each.
Without ``--model``/``--bundle`` it uses the model-free geodesic fallback.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the CT")
    parser.add_argument("labels", help="reference label map on the CT's grid")
    parser.add_argument(
        "--label-value", type=int, required=True, metavar="N", help="structure to segment"
    )
    parser.add_argument("--clicks", type=int, default=10, metavar="K", help="clicks (default 10)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="ID", help="interactive model from the catalog")
    source.add_argument("--bundle", metavar="DIR", help="Deepgrow/DeepEdit bundle folder")
    parser.add_argument(
        "--trust",
        action="store_true",
        help="accept a bundle whose configs or scripts would run code not known to be safe",
    )
    parser.add_argument(
        "--initial", metavar="MASK", help="start from this label map's structure N, not nothing"
    )
    parser.add_argument(
        "--json", action="store_true", help='print {"dice": [...], "latency_ms": [...]}'
    )
    parser.add_argument(
        "--save", metavar="MASK.nii.gz", help="write the mask after the last click (value N)"
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import numpy as np

    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.core.labels import LabelMap, LabelTable
    from ctseg_gui.interactive.simulator import simulate
    from ctseg_gui.io import read_image, read_label_map, write_label_map

    if args.clicks < 1:
        raise CtsegError(f"--clicks must be at least 1, got {args.clicks}")
    if args.label_value < 1:
        raise CtsegError(f"--label-value must be a positive label, got {args.label_value}")
    image = read_image(args.image)
    reference = read_label_map(args.labels, image)
    truth = reference.array == args.label_value
    if not truth.any():
        raise CtsegError(
            f"label value {args.label_value} does not occur in the label map", args.labels
        )
    initial = None
    if args.initial:
        initial = read_label_map(args.initial, image).array == args.label_value
    refiner = _refiner(args, image)
    spacing_kji = tuple(image.spacing[::-1])
    result = simulate(refiner, truth, args.clicks, spacing_kji, initial=initial)
    if args.save:
        name = (
            reference.table[args.label_value].name
            if args.label_value in reference.table
            else f"label {args.label_value}"
        )
        array = (result.mask * args.label_value).astype(np.uint16)
        write_label_map(
            LabelMap(array, image, LabelTable.from_names({args.label_value: name})), args.save
        )
    if args.json:
        print(json.dumps({"dice": result.dice, "latency_ms": result.latency_ms}))
    else:
        for n, (d, t) in enumerate(zip(result.dice, result.latency_ms, strict=True), start=1):
            print(f"click {n:2d}: dice {d:.4f}  {t:7.1f} ms")
        print(
            f"final dice {result.dice[-1]:.4f}, median latency "
            f"{float(np.median(result.latency_ms)):.1f} ms",
            file=sys.stderr,
        )
    return 0


def _refiner(args: argparse.Namespace, image):
    if args.bundle or args.model:
        from ctseg_gui.interactive.deep import refiner_for

        if args.bundle and args.trust:
            from pathlib import Path

            from ctseg_gui.inference.trust import check_or_accept

            check_or_accept(Path(args.bundle), trust=True, hint="")
        return refiner_for(image, bundle=args.bundle, model=args.model)
    from ctseg_gui.interactive.geodesic import GeodesicRefiner

    return GeodesicRefiner(image)
