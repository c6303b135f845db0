"""``ctseg-gui``: the desktop application's entry point."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctseg-gui", description="CT segmentation workstation")
    parser.add_argument("path", nargs="?", help="CT to open: DICOM folder, NIfTI, NRRD or MHA")
    parser.add_argument("--labels", help="label map to show on the CT")
    parser.add_argument("--screenshot", metavar="PNG", help="render, save the window, exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the application; returns the exit code."""
    args = build_parser().parse_args(argv)
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QMainWindow()
    window.setWindowTitle("ctseg-gui")
    text = "No image loaded"
    if args.path:
        from ctseg_gui.core.errors import CtsegError
        from ctseg_gui.io import read_image

        try:
            volume = read_image(args.path)
            text = f"{args.path}: {' x '.join(map(str, volume.size))} voxels"
        except CtsegError as error:
            text = str(error)
    window.setCentralWidget(QLabel(text))
    window.resize(900, 700)
    from ctseg_gui.qt._first_paint import report_first_paint

    report_first_paint(window)  # start-up measurement hook (packaging/measure_startup.py)
    window.show()
    if args.screenshot:
        app.processEvents()
        window.grab().save(args.screenshot)
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
