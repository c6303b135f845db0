"""Entry point of the frozen (PyInstaller) application and ``python app/ctseg_app.py``.

One executable serves every role: with a ``ctseg`` subcommand as first argument it is the CLI
(``<app> info ...``, ``<app> segment ...``), otherwise the GUI. Child processes (the compute worker)
are started through this same executable, never through ``python -m``.
"""

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()
    from ctseg_gui.cli import COMMANDS

    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        from ctseg_gui.cli import main as cli_main

        return cli_main(sys.argv[1:])
    from ctseg_gui.qt.app import main as gui_main

    return gui_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
