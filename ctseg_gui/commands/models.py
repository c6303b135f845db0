"""``ctseg models list|install|remove|verify``: the catalog and the installed bundles."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="catalog models, what is installed, and the built-in")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    install = sub.add_parser(
        "install",
        help="install from a bundle folder / .zip / weights file, or download a catalog model",
        description="ctseg models install PATH | ctseg models install ID PATH | "
        "ctseg models install ID --download [--url URL]",
    )
    install.add_argument("target", help="catalog id, or a bundle folder / .zip to install")
    install.add_argument("source", nargs="?", help="bundle folder, .zip or .pt for the id")
    install.add_argument("--download", action="store_true", help="download (resumable)")
    install.add_argument("--url", help="download from this URL instead of the catalog's")
    install.add_argument("--force", action="store_true", help="replace an installed copy")
    install.add_argument(
        "--trust",
        action="store_true",
        help="accept a bundle whose configs or scripts would run code not known to be safe "
        "(remembered for these exact files); without it such a bundle is refused",
    )
    remove = sub.add_parser("remove", help="delete an installed model")
    remove.add_argument("model_id")
    verify = sub.add_parser("verify", help="check an installed model's files and checksums")
    verify.add_argument("model_id")


def _listing() -> dict:
    from ctseg_gui.inference.manager import models_dir
    from ctseg_gui.inference.overview import model_overview

    rows = []
    for row in model_overview():  # the same rows as the GUI's model manager
        entry = {
            "id": row.model_id,
            "name": row.title,
            "task": row.task,
            "installed": row.installed,
            "version": row.version,
            "variants": sorted(row.variants),
            "path": str(row.path) if row.path else None,
            "size_bytes": row.size_bytes,
            "licence": row.licence,
            "source": row.source,
        }
        if row.kind == "builtin":
            entry["builtin"] = True
        rows.append(entry)
    return {"models_dir": str(models_dir()), "models": rows}


def _print_progress(done: int, total: int | None) -> None:
    shown = f"{done / total * 100:5.1f}%" if total else f"{done / 1e6:.1f} MB"
    sys.stderr.write(f"\rdownloading {shown}")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.inference import manager

    if args.action == "list":
        data = _listing()
        if args.json:
            print(json.dumps(data, indent=1))
            return 0
        print(f"models folder: {data['models_dir']}")
        for row in data["models"]:
            state = "built-in" if row.get("builtin") else ("installed" if row["installed"] else "-")
            variants = f"  variants: {', '.join(row['variants'])}" if row["variants"] else ""
            print(f"  {row['id']:<36} {state:<10} {row['name']}{variants}")
        return 0
    if args.action == "remove":
        folder = manager.remove(args.model_id)
        print(f"removed {args.model_id} ({folder})")
        return 0
    if args.action == "verify":
        problems = manager.verify(args.model_id)
        for problem in problems:
            print(f"  {problem}")
        print(f"{args.model_id}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 0 if not problems else 1
    # install
    if args.download or args.url:
        installed = manager.download_and_install(
            args.target, _print_progress, url=args.url, trust=args.trust
        )
        sys.stderr.write("\n")
    elif args.source:
        installed = manager.install(args.source, args.target, force=args.force, trust=args.trust)
    else:
        installed = manager.install(Path(args.target), None, force=args.force, trust=args.trust)
    print(f"installed {installed.model_id} {installed.version} in {installed.path}")
    return 0
