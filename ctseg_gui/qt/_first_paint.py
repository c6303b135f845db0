"""Report the moment the main window first paints, for start-up measurements.

``packaging/measure_startup.py`` sets ``CTSEG_REPORT_FIRST_PAINT=<file>`` and launches the app; when
the first paint event of the main window (or any widget in it) has been handled, the wall-clock time
(``time.time()``) is written to that file. Without the variable nothing is installed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_VAR = "CTSEG_REPORT_FIRST_PAINT"


def report_first_paint(window) -> None:
    """Write ``time.time()`` to ``$CTSEG_REPORT_FIRST_PAINT`` after ``window`` first paints.

    Parameters
    ----------
    window : PySide6.QtWidgets.QWidget
        The top-level window whose first paint counts.
    """
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()

    def write() -> None:
        # Written through a temporary name so a poller never reads half a number.
        tmp = Path(f"{target}.tmp")
        tmp.write_text(f"{time.time():.6f}\n")
        tmp.replace(target)

    class _Probe(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint and obj.isWidgetType() and obj.window() == window:
                app.removeEventFilter(self)
                # Runs once this paint event has been handled, i.e. the frame is drawn.
                QTimer.singleShot(0, write)
            return False

    probe = _Probe(window)  # parented to the window, so it lives as long as the window
    app.installEventFilter(probe)
