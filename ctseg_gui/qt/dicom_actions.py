"""File > Export > DICOM SEG / DICOM RTSTRUCT and File > Open DICOM SEG, over the loaded series.

The actions are enabled while the open image came from a classic DICOM series (its folder is the
series the exports reference). Exports and imports are jobs of the job model, as file loading is: a
104-structure export takes seconds to minutes, and the labels are copied first so edits made
meanwhile neither race the writer nor end up half in the file. Results arrive on the GUI thread.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from ctseg_gui.qt.jobs import QtJobs

DICOM_FILTER = "DICOM (*.dcm);;All files (*)"


class QtDicomTasks(QObject):
    """Runs one export or import at a time as a job (``dicom`` channel of the job model).

    Signals
    -------
    finished(str)
        Status text of a completed export, or of an import (after its labels are shown).
    failed(str)
        One-line error.
    """

    finished = Signal(str)
    failed = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self._jobs = QtJobs(self)

    @property
    def busy(self) -> bool:
        """Whether an export or import is under way."""
        return self._jobs.busy("dicom")

    def start(self, work, on_result) -> bool:
        """Run ``work()`` off the GUI thread; ``on_result(value)`` runs on the GUI thread."""
        if self.busy:
            self.window._report("a DICOM export or import is still running")
            return False
        self._jobs.run("dicom", lambda _job: work(), on_result=on_result, on_error=self.failed.emit)
        return True

    def show_imported(self, labels, path: str) -> None:
        document = self.window.document
        if document.image is None or not labels.image.same_grid(document.image):
            self.failed.emit(f"{path}: the image changed while the SEG was read")
            return
        document.set_labels(labels, path)
        document.table_changed.emit()
        self.finished.emit(f"{len(labels.present_values())} segments read from {path}")


def install(window) -> None:
    """Add the DICOM actions to the File menu and keep their enabled state in step."""
    tasks = window.dicom_tasks = QtDicomTasks(window)
    tasks.finished.connect(lambda text: window.statusBar().showMessage(text, 10000))
    tasks.failed.connect(window._report)
    window.open_seg_action = QAction("Open DICOM SEG…", window)
    window.open_seg_action.triggered.connect(lambda: open_seg(window))
    window.export_seg_action = QAction("DICOM SEG…", window)
    window.export_seg_action.triggered.connect(lambda: export_dicom(window, "seg"))
    window.export_rtstruct_action = QAction("DICOM RTSTRUCT…", window)
    window.export_rtstruct_action.triggered.connect(lambda: export_dicom(window, "rtstruct"))
    menu = window.file_menu
    actions = menu.actions()
    menu.insertAction(actions[actions.index(window.labels_action) + 1], window.open_seg_action)
    window.export_menu = menu.addMenu("Export")  # then moved below Save Labels As
    last_save = getattr(window, "save_labels_as_action", window.open_seg_action)
    actions = menu.actions()
    menu.insertMenu(actions[actions.index(last_save) + 1], window.export_menu)
    window.export_menu.addAction(window.export_seg_action)
    window.export_menu.addAction(window.export_rtstruct_action)
    window.document.image_loaded.connect(lambda _volume: update_enabled(window))
    window.document.closed.connect(lambda: update_enabled(window))
    update_enabled(window)


def series_folder(window) -> Path | None:
    """The folder of the open classic DICOM series, or None."""
    image = window.document.image
    if image is None or image.metadata.get("format") != "DICOM":
        return None
    return Path(image.metadata["source"])


def update_enabled(window) -> None:
    on = series_folder(window) is not None
    for action in (window.open_seg_action, window.export_seg_action, window.export_rtstruct_action):
        action.setEnabled(on)


def export_dicom(window, kind: str, path: str | Path | None = None) -> bool:
    """Export the labels as a SEG (``kind="seg"``) or RTSTRUCT over the open series.

    Returns whether the export started (its outcome arrives through ``window.dicom_tasks``).
    """
    from ctseg_gui.core.labels import LabelMap, LabelTable

    folder = series_folder(window)
    document = window.document
    if folder is None or document.labels is None:
        window._report("DICOM exports need an image opened from a DICOM series")
        return False
    if not document.labels.present_values():
        window._report("the label map is empty: nothing to export")
        return False
    if path is None:
        title = "Export DICOM SEG" if kind == "seg" else "Export DICOM RTSTRUCT"
        suggested = folder.parent / f"{folder.name}_{kind}.dcm"
        path, _ = QFileDialog.getSaveFileName(window, title, str(suggested), DICOM_FILTER)
        if not path:
            return False
    current = document.labels
    snapshot = LabelMap(
        current.array.copy(), current.image, LabelTable(dict(current.table.entries))
    )
    snapshot.provenance = current.provenance
    snapshot.edit_tally = Counter(current.edit_tally or {})
    series_uid = current.image.metadata.get("series_uid")
    tasks = window.dicom_tasks

    def work():
        if kind == "seg":
            from ctseg_gui.io.dicom_seg import export_seg as write
        else:
            from ctseg_gui.io.rtstruct import export_rtstruct as write
        return write(snapshot, folder, path, series_uid=series_uid)

    name = "DICOM SEG" if kind == "seg" else "RTSTRUCT"
    return tasks.start(work, lambda written: tasks.finished.emit(f"{name} written to {written}"))


def open_seg(window, path: str | Path | None = None) -> bool:
    """Read a DICOM SEG over the open series and show it as the label map."""
    from ctseg_gui.core.labels import LabelMap

    folder = series_folder(window)
    document = window.document
    if folder is None:
        window._report("open the SEG's DICOM series first")
        return False
    if not window._confirm_discard():
        return False
    if path is None:
        path, _ = QFileDialog.getOpenFileName(
            window, "Open DICOM SEG", str(folder.parent), DICOM_FILTER
        )
        if not path:
            return False
    image = document.image
    tasks = window.dicom_tasks

    def work():
        from ctseg_gui.io.dicom_seg import import_seg

        read = import_seg(path, folder, series_uid=image.metadata.get("series_uid"))
        labels = LabelMap(read.array, image, read.table)  # onto the open image's grid
        labels.provenance = read.provenance
        return labels

    return tasks.start(work, lambda labels: tasks.show_imported(labels, str(path)))
