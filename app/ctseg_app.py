"""Entry point of the frozen (PyInstaller) application and ``python app/ctseg_app.py``.

One executable serves every role:

* ``<app> COMMAND ...`` with a ``ctseg`` subcommand (``info``, ``segment``, ``convert``, the compute
  worker's own subcommand, ...) runs the CLI;
* ``<app> --bundle-info`` prints where this installation finds its resources, models and user
  folders, as JSON (support and the packaging tests use it);
* ``<app> --self-test-compute OUT.json IMAGE [MODEL]`` opens IMAGE in the real main window, presses
  Run in its model panel and writes what ran where (GUI and worker process ids, the worker's
  command line, the labels) to OUT.json: the packaging tests' check that a GUI job runs in the
  worker child process of the frozen app;
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


def _process_facts(pid: int) -> dict:
    """Command line and parent of a process, from /proc (Linux; empty elsewhere)."""
    from pathlib import Path

    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return {}
    cmdline = proc.joinpath("cmdline").read_bytes().split(b"\0")
    # /proc/PID/stat: "pid (name) state ppid ..."; the name may hold spaces, so split after ")".
    ppid = int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    return {"cmdline": [part.decode() for part in cmdline if part], "ppid": ppid}


def gui_compute_self_test(out: str, image: str, model_id: str = "ct-tissues") -> int:
    """Run one model job through the GUI's model panel and report where it ran (JSON in ``out``)."""
    import json
    import os
    import time

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    report: dict = {"gui_pid": os.getpid(), "model": model_id}
    deadline = time.monotonic() + 300

    def finish(code: int) -> None:
        report["torch_in_gui_process"] = "torch" in sys.modules
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        app.exit(code)

    def on_result(labels) -> None:
        import numpy as np

        values, counts = np.unique(np.asarray(labels.array), return_counts=True)
        report["labels"] = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
        pid = panel_of_window().bridge.client.pid
        report["worker_pid"] = pid
        report["worker"] = _process_facts(pid) if pid else {}
        finish(0)

    def on_failed(message: str) -> None:
        report["error"] = message
        finish(1)

    def panel_of_window():
        for widget in app.topLevelWidgets():
            panel = getattr(widget, "model_panel", None)
            if panel is not None:
                return panel
        return None

    def poll() -> None:
        if time.monotonic() > deadline:
            report["error"] = "timed out waiting for the image or the job"
            finish(1)
            return
        panel = panel_of_window()
        if panel is None or not panel.run_button.isEnabled():
            QTimer.singleShot(100, poll)
            return
        panel.result_ready.connect(on_result)
        panel.failed.connect(on_failed)
        panel.select_model(model_id)
        panel.run()

    QTimer.singleShot(0, poll)
    from ctseg_gui.qt.app import main as gui_main

    return gui_main([image])


def main() -> int:
    # First: in a multiprocessing child this runs the child's work and exits.
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    if argv[:1] == ["--bundle-info"]:
        import json

        print(json.dumps(bundle_info(), indent=2))
        return 0
    if argv[:1] == ["--self-test-compute"] and len(argv) in (3, 4):
        return gui_compute_self_test(*argv[1:])
    from ctseg_gui.cli import COMMANDS

    if argv and argv[0] in COMMANDS:
        from ctseg_gui.cli import main as cli_main

        return cli_main(argv)
    from ctseg_gui.qt.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
