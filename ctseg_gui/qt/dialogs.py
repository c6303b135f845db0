"""Small dialogs of the viewer: DICOM series picker and the keyboard/mouse help."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

SHORTCUTS = (
    ("Ctrl+O", "Open image file"),
    ("Ctrl+Shift+O", "Open DICOM folder"),
    ("Ctrl+L", "Load label map"),
    ("Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "Undo / redo label edits"),
    ("Mouse wheel, PageUp/PageDown, Up/Down", "Scroll slices in the view under the mouse"),
    ("Left click / drag", "Move the linked crosshair (navigate tool)"),
    ("Ctrl + left drag", "Adjust window (horizontal) and level (vertical)"),
    ("Middle drag, Shift + left drag", "Pan"),
    ("Right drag, Ctrl + wheel", "Zoom"),
    ("Double click a view", "Maximise the view / restore the layout"),
    ("R", "Reset zoom and pan of all views"),
    ("1 - 6", "Window presets: soft tissue, lung, bone, brain, liver, mediastinum"),
    ("W", "Window/level drag tool"),
    ("N", "Navigate tool (crosshair)"),
    ("M", "Distance ruler tool"),
    ("G / C", "Rectangle / circle HU statistics tool"),
    ("B / E", "Brush / eraser for the active structure (right drag erases)"),
    ("[ / ]", "Smaller / larger brush"),
    ("Ctrl+S / Ctrl+Shift+S", "Save labels / save labels as"),
    ("Ctrl+Alt+S / Ctrl+Alt+O", "Save session / open session (.ctseg)"),
    ("K", "Click refinement tool: left click adds, right or Shift click removes"),
    ("Esc", "Clear rulers and ROIs"),
    ("F5 / F6 / F7", "Layouts: 2x2, 1 large + 3 small, single view"),
    ("T", "Show or hide the label overlay"),
    ("X", "Show or hide the crosshair"),
    ("F1", "This help"),
)


class QtSeriesPicker(QDialog):
    """Lets the user choose one series of a folder that holds several."""

    def __init__(self, series: list, folder: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a DICOM series")
        self.series = series
        columns = ("Series", "Modality", "Description", "Slices", "Size", "Patient", "Study date")
        self.table = QTableWidget(len(series), len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, entry in enumerate(series):
            values = (
                str(entry.series_number if entry.series_number is not None else ""),
                entry.modality,
                entry.series_description,
                str(entry.number_of_slices),
                " x ".join(str(n) for n in entry.dimensions),
                entry.patient_name.replace("^", " "),
                entry.study_date,
            )
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectRow(0)
        self.table.doubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{folder} holds {len(series)} series:"))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(760, 320)

    def selected_uid(self) -> str | None:
        """UID of the chosen series."""
        rows = self.table.selectionModel().selectedRows()
        return self.series[rows[0].row()].uid if rows else None


class QtHelpDialog(QDialog):
    """Keyboard and mouse reference."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        table = QTableWidget(len(SHORTCUTS), 2)
        table.setHorizontalHeaderLabels(("Keys / mouse", "Action"))
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for row, (keys, action) in enumerate(SHORTCUTS):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(action))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(640, 560)


def ask_yes_no(parent, title: str, question: str) -> bool:
    """A modal Yes / No question; True for Yes."""
    from PySide6.QtWidgets import QMessageBox

    buttons = QMessageBox.StandardButton
    return QMessageBox.question(parent, title, question, buttons.Yes | buttons.No) == buttons.Yes
