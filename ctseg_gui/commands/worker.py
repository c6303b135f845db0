"""``ctseg worker --connect ADDRESS``: the compute worker process (started by the app, not users).

The app starts this subcommand through its own executable (``ctseg_gui.launch.self_command``), so
the frozen app needs no Python interpreter; the connection key arrives in the environment.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect", required=True, metavar="ADDRESS", help="the app's connection address"
    )


def run(args: argparse.Namespace) -> int:
    from ctseg_gui.worker.server import serve

    return serve(args.connect)
