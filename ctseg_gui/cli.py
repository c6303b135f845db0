"""The ``ctseg`` command: the headless twin of the GUI's actions.

Only argparse and the standard library load at start-up; each subcommand imports what it needs when
it runs, so ``ctseg --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ctseg_gui import __version__

# name -> (module under ctseg_gui.commands, one-line help). Each module has add_arguments(parser)
# and run(args) -> int.
COMMANDS = {
    "info": ("info", "describe an image or list the DICOM series in a folder"),
    "convert": ("convert", "convert any supported image to NIfTI, NRRD or MetaImage"),
    "segment": ("segment", "segment a CT with a model (built-in or MONAI bundle)"),
    "models": ("models", "list, install, verify or remove models"),
    "backends": ("backends", "inference backends here: list, or check parity and speed on a CT"),
    "stats": ("stats", "volume and HU statistics per structure of a label map, as CSV"),
    "train": ("train", "fine-tune a model on corrected cases (JSON spec; resumable; DDP)"),
    "evaluate": ("evaluate", "per-class Dice of a model on cases with reference labels"),
    "worker": ("worker", "internal: the compute worker process the app starts for model jobs"),
    "export-seg": ("export_seg", "write a label map as a DICOM SEG referencing its CT series"),
    "export-rtstruct": ("export_rtstruct", "write a label map as a DICOM RTSTRUCT (contours)"),
    "import-seg": ("import_seg", "read a DICOM SEG back onto its series as a label map"),
    "clicks-eval": (
        "clicks_eval",
        "simulated click refinement of one structure: Dice and latency per click",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommand modules are imported to add their options)."""
    parser = argparse.ArgumentParser(
        prog="ctseg", description="CT segmentation workstation, command-line tools."
    )
    parser.add_argument("--version", action="version", version=f"ctseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        sub_parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks and library warnings",
        )
        _command_module(module).add_arguments(sub_parser)
    return parser


def _command_module(name: str):
    return importlib.import_module(f"ctseg_gui.commands.{name}")


def main(argv: list[str] | None = None) -> int:
    """Run ``ctseg``; returns the exit code (0 ok, 1 user-facing error, 2 usage or internal)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    debug = bool(getattr(args, "debug", False))
    with warnings.catch_warnings():
        _route_warnings(debug)
        try:
            return int(_command_module(args._module).run(args) or 0)
        except KeyboardInterrupt:
            print("ctseg: interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # noqa: BLE001 - one line for the user, traceback on --debug
            from ctseg_gui.core.errors import CtsegError

            if debug:
                raise
            if isinstance(error, CtsegError):
                print(f"ctseg: error: {error}", file=sys.stderr)
                return 1
            print(
                f"ctseg: internal error: {type(error).__name__}: {error} "
                "(run with --debug for details)",
                file=sys.stderr,
            )
            return 2


def _route_warnings(debug: bool) -> None:
    """Our warnings become one ``ctseg: warning:`` line; library noise is hidden unless --debug."""
    from ctseg_gui.core.errors import CtsegWarning

    if not debug:
        warnings.simplefilter("ignore")
    warnings.simplefilter("always", CtsegWarning)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CtsegWarning):
            print(f"ctseg: warning: {message}", file=sys.stderr)
        elif debug:
            print(
                warnings.formatwarning(message, category, filename, lineno, line),
                file=sys.stderr,
                end="",
            )

    warnings.showwarning = show


def entry() -> None:
    """Console entry point (``ctseg``): :func:`main`, then exit quickly once torch is loaded."""
    code = main()
    if "torch" in sys.modules:
        # An interpreter that has imported torch and MONAI takes 0.8 s to tear itself down, module
        # by module, and nothing in that helps a finished command: the exit handlers (atexit and
        # weakref finalizers: log flushing, temporary folders) still run, then the process ends.
        import atexit
        import os

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
