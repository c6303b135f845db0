"""``ctseg-gui``: the desktop application's entry point.

Start-up order is chosen for a fast first image: Qt comes up, the image starts loading in a worker
thread, and only then are VTK and the views built (their import overlaps with the read).
"""

from __future__ import annotations

import argparse
import sys

SCREENSHOT_TIMEOUT_MS = 180_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctseg-gui", description="CT segmentation workstation")
    parser.add_argument(
        "path", nargs="?", help="CT to open (DICOM folder, NIfTI, NRRD or MHA) or a .ctseg session"
    )
    parser.add_argument("--labels", help="label map to show on the CT")
    parser.add_argument("--screenshot", metavar="PNG", help="render, save the window, exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the application; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.labels and not args.path:
        print("ctseg-gui: --labels needs an image PATH to put the labels on", file=sys.stderr)
        return 2
    session = bool(args.path) and args.path.lower().endswith(".ctseg")
    if session and args.labels:
        print("ctseg-gui: a session brings its own labels; drop --labels", file=sys.stderr)
        return 2
    if not args.debug:
        sys.excepthook = _one_line_errors
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ctseg-gui")
    from ctseg_gui.qt.loader import QtLoader

    loader = QtLoader()
    if args.path and not session:
        loader.open_image(args.path)  # reading overlaps with building the window
    from ctseg_gui.qt.theme import apply_dark_theme

    apply_dark_theme(app)
    from ctseg_gui.qt.main_window import QtMainWindow

    window = QtMainWindow(loader, interactive=not args.screenshot)
    window._pending_labels = args.labels
    if session:
        window.open_path(args.path)  # reads the session file, then loads its image
    if loader.loading:
        window._on_loader_busy(f"Opening {args.path}…")
    from ctseg_gui.qt._first_paint import report_first_paint

    report_first_paint(window)  # start-up measurement hook (packaging/measure_startup.py)
    window.show()
    if args.screenshot:
        return _screenshot(app, window, args.screenshot)
    return app.exec()


def _screenshot(app, window, target: str) -> int:
    """Wait for loading to finish, draw everything, save the window, return the exit code."""
    from PySide6.QtCore import QTimer

    from ctseg_gui.qt.screenshot import grab_window

    result = {"code": 1}

    def shoot() -> None:
        if window.errors:
            app.exit(1)
            return
        window.render_all()
        app.processEvents()
        if grab_window(window).save(target):
            result["code"] = 0
        else:
            print(f"ctseg-gui: {target}: cannot write the PNG", file=sys.stderr)
        app.exit(result["code"])

    def on_idle() -> None:
        if not window.loader.loading:
            QTimer.singleShot(100, shoot)

    window.loader.idle.connect(on_idle)
    if not window.loader.loading:
        QTimer.singleShot(300, shoot)
    QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, lambda: app.exit(1))
    code = app.exec()
    return code if code else result["code"]


def _one_line_errors(kind, error, tb) -> None:
    # A bug in a slot must not kill the window or print a wall of text at the user.
    print(
        f"ctseg-gui: internal error: {kind.__name__}: {error} (run with --debug)", file=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
