"""``ctseg evaluate MODEL CASES [-o metrics.csv] [--json] [--baseline MODEL]``.

Per-class Dice of MODEL (installed id or bundle folder) on CASES (a datalist JSON or an MSD-style
folder), as a table and optionally a CSV. A fine-tuned model is shown beside its parent model
(recorded in its metadata) when that is installed; ``--baseline`` names another, ``--no-baseline``
shows the model alone. ``--json`` prints ``{"mean_dice", "per_class", "cases"}`` (with
``"baseline": {...}`` of the same form when there is one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="installed model id or a bundle folder")
    parser.add_argument("cases", help="datalist JSON or MSD-style folder (imagesTr/, labelsTr/)")
    parser.add_argument("-o", "--output", metavar="CSV", help="write per-case Dice as CSV")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--variant", help="model variant, e.g. highres or lowres")
    parser.add_argument(
        "--label-map",
        metavar="JSON",
        help='map reference values onto model classes: a JSON object {"<value>": class} or a '
        "file holding one (values not named are ignored)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--baseline", metavar="MODEL", help="also evaluate this model, side by side")
    group.add_argument("--no-baseline", action="store_true", help="do not add the parent model")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--section", choices=["training", "validation"], help="which list of a MONAI datalist"
    )


def _model(name: str, variant: str | None = None):
    from ctseg_gui.inference import resolve_model

    folder = Path(name).expanduser()
    return (
        resolve_model(None, folder, variant)
        if folder.is_dir()
        else resolve_model(name, variant=variant)
    )


def _label_map(text: str | None) -> dict | None:
    from ctseg_gui.core.errors import CtsegError

    if text is None:
        return None
    source = Path(text).expanduser()
    try:
        data = json.loads(source.read_text() if source.is_file() else text)
        return {str(int(float(k))): int(v) for k, v in data.items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise CtsegError(f"--label-map must be a JSON object of numbers ({error})") from None


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.training.datasets import read_cases
    from ctseg_gui.training.evaluate import evaluate_model, table, write_csv
    from ctseg_gui.training.events import _clean
    from ctseg_gui.training.export import parent_of

    model = _model(args.model, args.variant)
    cases = read_cases(args.cases, args.section)
    label_map = _label_map(args.label_map)
    baseline = None
    if args.baseline:
        baseline = _model(args.baseline)
    elif not args.no_baseline:
        parent = parent_of(model.bundle) if model.bundle else None
        if parent:
            baseline = _model(parent, model.variant)

    def progress(i: int, n: int, image: str) -> None:
        print(f"case {i + 1}/{n}: {image}", file=sys.stderr)

    results = [evaluate_model(model, cases, label_map, device=args.device, progress=progress)]
    if baseline is not None:
        results.append(
            evaluate_model(baseline, cases, label_map, device=args.device, progress=progress)
        )
    if args.output:
        write_csv(args.output, results)
    if args.json:
        out = dict(results[0])
        if len(results) > 1:
            out["baseline"] = results[1]
        print(json.dumps(_clean(out), indent=1))
    else:
        print(table(results))
    return 0
