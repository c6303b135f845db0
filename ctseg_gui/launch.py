"""How this installation starts its own child processes (the compute worker, helper commands).

In the frozen (PyInstaller) app ``sys.executable`` is the app itself, not a Python interpreter: it
cannot run ``-m module`` or ``-c code``. Its entry point (``app/ctseg_app.py``) instead dispatches a
``ctseg`` subcommand given as first argument. Build every child command line with
:func:`self_command` so the same code works in the frozen app and in a source install.
"""

from __future__ import annotations

import sys


def is_frozen() -> bool:
    """True inside the PyInstaller-built app."""
    return bool(getattr(sys, "frozen", False))


def self_command(subcommand: str, *args: str) -> list[str]:
    """Command line that runs ``ctseg <subcommand> <args>`` with this installation.

    Parameters
    ----------
    subcommand : str
        A name in ``ctseg_gui.cli.COMMANDS`` (e.g. the worker's own subcommand).
    *args : str
        Further arguments for the subcommand.

    Returns
    -------
    list of str
        ``[app, subcommand, *args]`` in the frozen app; ``[python, "-m", "ctseg_gui.cli",
        subcommand, *args]`` in a source or wheel install.
    """
    if is_frozen():
        return [sys.executable, subcommand, *args]
    return [sys.executable, "-m", "ctseg_gui.cli", subcommand, *args]
