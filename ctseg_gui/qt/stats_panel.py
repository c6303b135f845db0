"""Structure statistics: volume (mL), mean and std HU, voxel count per structure; sortable; CSV.

The numbers are :func:`~ctseg_gui.core.stats.structure_statistics` (the same as ``ctseg stats``),
computed as a background job (``stats`` channel of :class:`~ctseg_gui.qt.jobs.QtJobs`): a
512 x 512 x 400 map takes seconds. Edits restart a debounce
timer, and a result computed before a later edit is dropped (the newer computation replaces it).
While the panel is hidden nothing is computed; showing it catches up.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from types import SimpleNamespace

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.core.document import Document
from ctseg_gui.core.stats import write_stats_csv
from ctseg_gui.qt.jobs import QtJobs

# Short headers (the dock is narrow; the name gets the width); tooltips give units.
HEADERS = ("#", "Name", "Voxels", "mL", "Mean", "SD")
TOOLTIPS = (
    "Label value",
    "Structure",
    "Voxel count",
    "Volume in millilitres (voxels x voxel volume)",
    "Mean CT value (HU)",
    "Standard deviation of the CT values (HU; population, ddof=0)",
)
SORT_ROLE = Qt.ItemDataRole.UserRole  # numbers sort as numbers
DEBOUNCE_MS = 600


class StatsTableModel(QAbstractTableModel):
    """One row per structure present."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list = []
        self.colours: dict[int, tuple[int, int, int]] = {}

    def set_rows(self, rows: list, colours: dict[int, tuple[int, int, int]]) -> None:
        """Replace all rows."""
        self.beginResetModel()
        self.rows = list(rows)
        self.colours = colours
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008
        return len(HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return TOOLTIPS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        numbers = (row.value, row.name.lower(), row.voxels, row.volume_ml, row.mean_hu, row.std_hu)
        if role == SORT_ROLE:
            return numbers[column]
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return str(row.value)
            if column == 1:
                return row.name
            if column == 2:
                return f"{row.voxels:,}"
            if column == 3:
                return f"{row.volume_ml:.1f}" if row.volume_ml >= 1 else f"{row.volume_ml:.3f}"
            return f"{numbers[column]:.1f}"
        if role == Qt.ItemDataRole.DecorationRole and column == 1 and row.value in self.colours:
            return QColor(*self.colours[row.value])
        if role == Qt.ItemDataRole.TextAlignmentRole and column != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class QtStatsPanel(QWidget):
    """Sortable statistics table of the document's label map, with CSV export.

    Signals
    -------
    computed(list)
        New statistics (a list of :class:`~ctseg_gui.core.stats.StructureStats`) are shown.
    """

    computed = Signal(list)

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self._jobs = QtJobs(self)
        self._dirty = False
        self._busy = False
        self._editor = None
        self.model = StatsTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        # Numbers take what they need and the name the rest: no horizontal scrolling, no
        # structure name squeezed to two letters.
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        for column in range(len(HEADERS)):
            mode = (
                QHeaderView.ResizeMode.Stretch
                if column == 1
                else (QHeaderView.ResizeMode.ResizeToContents)
            )
            header.setSectionResizeMode(column, mode)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.status = QLabel("No labels.")

        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)

        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.recompute)
        document.labels_replaced.connect(self._on_document_labels_replaced)
        document.table_changed.connect(self._on_document_table_changed)
        document.closed.connect(self._on_document_closed)
        if document.labels is not None:  # made after the labels arrived
            self._on_document_labels_replaced(document.labels)

    # ---- public API --------------------------------------------------------------------------
    @property
    def rows(self) -> list:
        """The statistics shown (value order)."""
        return list(self.model.rows)

    @property
    def computing(self) -> bool:
        """Whether a computation is under way or waiting on the debounce timer."""
        return self._busy or self._timer.isActive()

    def recompute(self) -> None:
        """Compute the statistics now, in a background thread (when the panel is shown)."""
        self._timer.stop()
        labels = self.document.labels
        if labels is None:
            return
        if not self.isVisible():
            self._dirty = True  # catch up when shown: no seconds of CPU for a hidden table
            return
        self._dirty = False
        self._busy = True
        self.status.setText("Computing…")
        # The thread reads the live arrays: an edit made meanwhile starts a newer computation,
        # whose result replaces this one (this one is dropped as stale).
        snapshot = SimpleNamespace(array=labels.array, image=labels.image, table=labels.table)
        self._jobs.run(
            "stats", _work, snapshot, on_result=self._on_computed, on_error=self._on_failed
        )

    def export_csv(self, path: str | Path) -> None:
        """Write the shown statistics to ``path`` (the ``ctseg stats`` CSV format)."""
        with open(path, "w", newline="") as out:
            write_stats_csv(sorted(self.model.rows, key=lambda r: r.value), out)

    # ---- events ------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty:
            self._timer.start(0)

    def _on_failed(self, error: str) -> None:
        self._busy = False
        self.status.setText(f"Statistics failed: {error}")

    def _on_computed(self, result) -> None:
        rows, seconds = result
        self._busy = False
        self._show(rows)
        self.status.setText(f"{len(rows)} structures ({seconds:.1f} s)")
        self.computed.emit(list(rows))

    def _show(self, rows) -> None:
        table = self.document.labels.table if self.document.labels is not None else None
        if table is not None:  # names may have changed since the thread read them
            rows = [
                dataclasses.replace(r, name=table[r.value].name) if r.value in table else r
                for r in rows
            ]
        colours = {e.value: e.color for e in table} if table is not None else {}
        self.model.set_rows(rows, colours)
        self.export_button.setEnabled(bool(rows))

    def _on_document_labels_replaced(self, labels) -> None:
        if self._editor is not None:
            self._editor.changed.disconnect(self._on_editor_changed)
        self._editor = self.document.editor
        self._editor.changed.connect(self._on_editor_changed)
        self.model.set_rows([], {})
        self._timer.start(0)

    def _on_editor_changed(self, _region) -> None:
        self._jobs.drop("stats")  # a computation under way is now stale
        self._busy = False
        self._timer.start(DEBOUNCE_MS)

    def _on_document_table_changed(self) -> None:
        if self.model.rows:  # names or colours changed: no need to recount
            self._show(self.model.rows)

    def _on_document_closed(self) -> None:
        self._jobs.drop("stats")
        self._timer.stop()
        self._busy = False
        self.model.set_rows([], {})
        self.export_button.setEnabled(False)
        self.status.setText("No labels.")

    def _on_export_button_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export statistics", "stats.csv", "CSV (*.csv)")
        if not path:
            return
        try:
            self.export_csv(path)
        except OSError as error:
            self.status.setText(f"Cannot write {path}: {error.strerror or error}")
            return
        self.status.setText(f"Wrote {Path(path).name}: {len(self.model.rows)} structures")


def _work(_job, labels) -> tuple[list, float]:
    """The statistics of ``labels`` and the seconds they took (on the job's thread)."""
    from ctseg_gui.core.stats import structure_statistics

    started = time.perf_counter()
    rows = structure_statistics(labels)
    return rows, time.perf_counter() - started
