"""``ctseg train SPEC.json [--resume] [--json]`` and ``ctseg train --template MODEL``.

One fine-tuning run (see :mod:`ctseg_gui.training.spec` for the spec and
:mod:`ctseg_gui.training.events` for the ``--json`` events). With ``"nproc": N > 1`` the command
starts itself N times through torch's launcher (DDP) and waits. SIGTERM / SIGINT cancel: the run
writes a checkpoint and exits with status 0; ``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", help="the run's spec (JSON)")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR's last checkpoint")
    parser.add_argument(
        "--json", action="store_true", help="print progress as JSON lines on stdout"
    )
    parser.add_argument(
        "--template",
        metavar="MODEL",
        help="print a spec with this model's defaults (installed id or bundle folder) and exit",
    )
    parser.add_argument("--variant", help="with --template: the model's variant")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the spec, model and cases and print the data cache's RAM estimate (JSON); "
        "do not train",
    )


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.core.errors import CtsegError

    if args.template:
        from ctseg_gui.training.spec import template

        print(json.dumps(template(args.template, args.variant), indent=2))
        return 0
    if not args.spec:
        raise CtsegError("give a SPEC.json (or --template MODEL for a starting point)")
    from ctseg_gui.training.distributed import is_rank, launch_ranks
    from ctseg_gui.training.spec import load_spec

    spec = load_spec(args.spec)
    if args.check:
        from ctseg_gui.training.engine import estimate

        print(json.dumps(estimate(spec), indent=1))
        return 0
    from pathlib import Path

    from ctseg_gui.training.checkpoint import CHECKPOINT

    if not args.resume and (Path(spec.run_dir) / CHECKPOINT).exists():
        # said before torch loads: a started run is never silently overwritten
        raise CtsegError(
            "already holds a run; continue it with --resume or pick a new run_dir", spec.run_dir
        )
    if spec.nproc > 1 and not is_rank():
        extra = [str(spec.source)] + ["--resume"] * args.resume + ["--json"] * args.json
        if getattr(args, "debug", False):
            extra.append("--debug")
        launch_ranks(spec.nproc, extra, spec.run_dir)
        return 0
    from ctseg_gui.training.engine import run_training

    run_training(spec, resume=args.resume, json_lines=args.json, human=sys.stderr)
    return 0
