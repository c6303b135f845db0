"""``ctseg backends list|check``: the inference backends installed here and their parity checks.

``check`` runs central windows of a CT through torch float32 and every installed backend and
precision, compares their labels (Dice per class) and times them; the record it leaves is what
``ctseg segment --backend auto`` chooses from.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="installed backends, their versions and the cache folder")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    check = sub.add_parser(
        "check", help="parity and speed of each backend against torch float32 on a CT"
    )
    check.add_argument("input", help="CT to take the windows from (any readable image)")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--model", help="installed model id")
    source.add_argument("--bundle", metavar="DIR", help="a MONAI bundle folder")
    check.add_argument("--variant", help="model variant, e.g. highres or lowres")
    check.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    check.add_argument("--windows", type=int, default=2, help="windows per check (default 2)")
    check.add_argument("--series", metavar="UID", help="DICOM series to use from a folder")
    check.add_argument("--json", action="store_true", help="print the record as JSON")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    from ctseg_gui.core.modality import require_ct
    from ctseg_gui.inference import resolve_model
    from ctseg_gui.inference.backends.model_check import check_model_backends
    from ctseg_gui.io import read_image

    model = resolve_model(args.model, args.bundle, args.variant)
    volume = read_image(args.input, series_uid=args.series)
    require_ct(volume, str(args.input))
    results = check_model_backends(volume, model, device=args.device, windows=args.windows)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{model.name}: {args.windows} windows, against torch float32")
    print(f"{'backend/precision':<22}{'s/batch':>9}{'mean Dice':>11}{'min Dice':>10}  result")
    for name, entry in results.items():
        if "seconds_per_batch" not in entry:
            print(f"{name:<22}{'':>9}{'':>11}{'':>10}  skipped: {entry.get('reason', '')}")
            continue
        verdict = "passed" if entry["passed"] else "FAILED"
        print(
            f"{name:<22}{entry['seconds_per_batch']:9.2f}{entry['mean_dice']:11.4f}"
            f"{entry['min_dice']:10.4f}  {verdict}"
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    from ctseg_gui.inference.backends import BACKENDS, backend_version, is_installed
    from ctseg_gui.inference.backends.cache import cache_root

    rows = {b: backend_version(b) if is_installed(b) else None for b in BACKENDS[1:]}
    if args.json:
        print(json.dumps({"backends": rows, "cache": str(cache_root())}))
        return 0
    for name, version in rows.items():
        print(f"{name:<12} {version if version is not None else 'not installed'}")
    print(f"cache: {cache_root()}")
    return 0
