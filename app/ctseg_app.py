"""Entry point of the frozen (PyInstaller) application and ``python app/ctseg_app.py``.

One executable serves every role:

* ``<app> COMMAND ...`` with a ``ctseg`` subcommand (``info``, ``segment``, ``convert``, the compute
  worker's own subcommand, ...) runs the CLI;
* ``<app> --bundle-info`` prints where this installation finds its resources, models and user
  folders, as JSON (support and the packaging tests use it);
* anything else opens the GUI (``<app> [IMAGE] [--screenshot PNG] ...``).

Child processes are started through this same executable (``ctseg_gui.launch.self_command``),
never through ``python -m``, and ``multiprocessing`` children through ``freeze_support``.
"""

import multiprocessing
import sys


def bundle_info() -> dict:
    """Where this installation looks for its files (no heavy imports)."""
    import platformdirs

    from ctseg_gui import __version__
    from ctseg_gui.launch import is_frozen
    from ctseg_gui.resources import models_path, resource_path, sample_ct

    return {
        "version": __version__,
        "frozen": is_frozen(),
        "executable": sys.executable,
        "bundle_dir": getattr(sys, "_MEIPASS", None),
        "resources": str(resource_path()),
        "models": str(models_path()),
        "sample_ct": str(sample_ct()),
        "user_config_dir": platformdirs.user_config_dir("ctseg-gui", appauthor=False),
        "user_data_dir": platformdirs.user_data_dir("ctseg-gui", appauthor=False),
        "user_cache_dir": platformdirs.user_cache_dir("ctseg-gui", appauthor=False),
        "sys_path": list(sys.path),
        # PyInstaller's Qt runtime hook imports the bare PySide6 package; its modules count.
        "heavy_modules_loaded": sorted(
            name
            for name in ("torch", "monai", "SimpleITK", "vtkmodules", "PySide6.QtWidgets")
            if name in sys.modules
        ),
    }


def main() -> int:
    # First: in a multiprocessing child this runs the child's work and exits.
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    if argv[:1] == ["--bundle-info"]:
        import json

        print(json.dumps(bundle_info(), indent=2))
        return 0
    from ctseg_gui.cli import COMMANDS

    if argv and argv[0] in COMMANDS:
        from ctseg_gui.cli import main as cli_main

        return cli_main(argv)
    from ctseg_gui.qt.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
