"""Label panel: one table row per structure (visibility, colour, value, name, volume in mL).

A ``QTableView`` over a model, so 104 (or 1000) structures cost one widget; a filter box narrows the
rows by name or value. Display options (opacity, fill, outline) edit the viewer state.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QColorDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.core.document import Document
from ctseg_gui.core.viewer_state import ViewerState

COLUMNS = ("", "", "#", "Name", "mL")
VISIBLE, COLOUR, VALUE, NAME, VOLUME = range(5)
SORT_ROLE = Qt.ItemDataRole.UserRole  # numbers sort as numbers, not as text


class SliceCounts:
    """Voxels per label, kept per slice so an edit recounts only the slices it touched.

    A full ``bincount`` of a 512 x 512 x 400 map takes about a second; a brush stroke touches a
    few slices, so recounting those keeps the panel's volumes live without freezing the window.
    """

    def __init__(self) -> None:
        self._array: np.ndarray | None = None
        self._per_slice: list[np.ndarray] = []

    def reset(self, array: np.ndarray | None) -> None:
        """Count a new map (an all-background one costs one quick ``any``)."""
        self._array = array
        if array is None:
            self._per_slice = []
        elif not array.any():
            self._per_slice = [np.zeros(1, np.int64) for _ in range(array.shape[0])]
        else:
            self._per_slice = [np.bincount(plane.ravel()) for plane in array]

    def update(self, region) -> None:
        """Recount the slices of ``region`` (``[k, j, i]`` slices)."""
        if self._array is None:
            return
        for k in range(*region[0].indices(self._array.shape[0])):
            self._per_slice[k] = np.bincount(self._array[k].ravel())

    def totals(self) -> dict[int, int]:
        """Voxels per non-zero label present."""
        if not self._per_slice:
            return {}
        total = np.zeros(max(len(c) for c in self._per_slice), np.int64)
        for counts in self._per_slice:
            total[: len(counts)] += counts
        return {int(v): int(total[v]) for v in np.flatnonzero(total) if v}


class LabelTableModel(QAbstractTableModel):
    """Rows of the document's label table (structures present or named)."""

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self._values: list[int] = []
        self._volumes: dict[int, float] = {}
        self.counts = SliceCounts()

    def refresh(self, volumes: bool = True) -> None:
        """Re-read the table (and the voxel counts when ``volumes``)."""
        self.beginResetModel()
        labels = self.document.labels
        self._values = [e.value for e in labels.table] if labels is not None else []
        if volumes and labels is not None:
            voxel_ml = float(np.prod(labels.image.spacing)) / 1000.0
            self._volumes = {v: n * voxel_ml for v, n in self.counts.totals().items()}
        self.endResetModel()

    def value_at(self, row: int) -> int:
        """Label value of a row."""
        return self._values[row]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._values)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return ("Visible", "Colour (double-click to change)", "Label value", "Structure",
                    "Volume in millilitres")[section]  # fmt: skip
        return None

    def flags(self, index):
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == VISIBLE:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        if index.column() == NAME:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.document.labels is None:
            return None
        entry = self.document.labels.table[self._values[index.row()]]
        column = index.column()
        if role == Qt.ItemDataRole.CheckStateRole and column == VISIBLE:
            return Qt.CheckState.Checked if entry.visible else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DecorationRole and column == COLOUR:
            return QColor(*entry.color)
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column == VALUE:
                return entry.value
            if column == NAME:
                return entry.name
            if column == VOLUME:
                ml = self._volumes.get(entry.value, 0.0)
                if not ml:
                    return "–"  # named but absent from the map
                return f"{ml:.1f}" if ml >= 1 else f"{ml:.2f}"
        if role == SORT_ROLE:
            return (entry.visible, None, entry.value, entry.name.lower(),
                    self._volumes.get(entry.value, 0.0))[column]  # fmt: skip
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (VALUE, VOLUME):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        label = self._values[index.row()]
        if role == Qt.ItemDataRole.CheckStateRole and index.column() == VISIBLE:
            self.document.update_label(label, visible=Qt.CheckState(value) == Qt.CheckState.Checked)
        elif role == Qt.ItemDataRole.EditRole and index.column() == NAME and str(value).strip():
            self.document.update_label(label, name=str(value).strip())
        else:
            return False
        self.dataChanged.emit(index, index)
        return True


class QtLabelPanel(QWidget):
    """Structures table with filter, show/hide all, and overlay display options."""

    def __init__(self, document: Document, state: ViewerState, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self.state = state
        self.model = LabelTableModel(document, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setSortRole(SORT_ROLE)

        self.filter_box = QLineEdit(placeholderText="Filter structures…", clearButtonEnabled=True)
        self.filter_box.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(VALUE, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        for column, mode in (
            (VISIBLE, QHeaderView.ResizeMode.ResizeToContents),
            (COLOUR, QHeaderView.ResizeMode.ResizeToContents),
            (VALUE, QHeaderView.ResizeMode.ResizeToContents),
            (NAME, QHeaderView.ResizeMode.Stretch),
            (VOLUME, QHeaderView.ResizeMode.ResizeToContents),
        ):
            header.setSectionResizeMode(column, mode)
        # The name column takes the room left; it never shrinks to an ellipsis of a few letters.
        header.setMinimumSectionSize(24)
        header.setStretchLastSection(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.clicked.connect(self._on_table_clicked)
        self.table.doubleClicked.connect(self._on_table_double_clicked)

        self.show_all = QPushButton("Show all")
        self.hide_all = QPushButton("Hide all")
        self.show_all.clicked.connect(lambda: self._set_shown_rows_visible(True))
        self.hide_all.clicked.connect(lambda: self._set_shown_rows_visible(False))
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.opacity.setValue(round(state.opacity * 100))
        self.opacity.valueChanged.connect(lambda v: setattr(state, "opacity", v / 100))
        self.fill = QCheckBox("Fill", checked=state.fill)
        self.fill.toggled.connect(lambda on: setattr(state, "fill", on))
        self.outline = QCheckBox("Outline", checked=state.outline)
        self.outline.toggled.connect(lambda on: setattr(state, "outline", on))
        self.summary = QLabel()
        self.setMinimumWidth(300)
        # One check box per structure group of the table (organs, vessels, ribs...); partially
        # checked when some of the group are hidden. Hidden for tables without groups.
        self.groups_box = QWidget()
        self.groups_layout = QGridLayout(self.groups_box)
        self.groups_layout.setContentsMargins(0, 0, 0, 0)
        self.groups_layout.setHorizontalSpacing(8)
        self.groups_layout.setVerticalSpacing(2)
        self.group_boxes: dict[str, QCheckBox] = {}
        self.groups_box.hide()
        self.names_button = QPushButton("Use whole-body names (104)")
        self.names_button.setToolTip(
            "This map has no names: name its values as the 104 TotalSegmentator v1 structures"
        )
        self.names_button.clicked.connect(self.use_wholebody_names)
        self.names_button.hide()

        buttons = QHBoxLayout()
        buttons.addWidget(self.show_all)
        buttons.addWidget(self.hide_all)
        display = QHBoxLayout()
        display.addWidget(QLabel("Opacity"))
        display.addWidget(self.opacity, 1)
        display.addWidget(self.fill)
        display.addWidget(self.outline)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.filter_box)
        layout.addWidget(self.groups_box)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.names_button)
        layout.addLayout(buttons)
        layout.addLayout(display)
        layout.addWidget(self.summary)

        self._volume_timer = QTimer(self, singleShot=True, interval=400)
        self._volume_timer.timeout.connect(self.refresh)
        document.labels_replaced.connect(self._on_document_labels_replaced)
        document.table_changed.connect(self._on_document_table_changed)
        document.closed.connect(self._on_document_closed)

    def refresh(self) -> None:
        """Re-read structures and volumes."""
        self.model.refresh()
        labels = self.document.labels
        present = len(self.model._volumes) if labels is not None else 0
        self.summary.setText(f"{self.model.rowCount()} structures, {present} present")
        self._rebuild_groups()

    # ---- groups ------------------------------------------------------------------------------
    def groups(self) -> dict[str, list[int]]:
        """Label values per group of the current table, in the table's group order."""
        labels = self.document.labels
        members: dict[str, list[int]] = {}
        if labels is not None:
            for entry in labels.table:
                if entry.group:
                    members.setdefault(entry.group, []).append(entry.value)
        return members

    def set_group_visible(self, group: str, visible: bool) -> None:
        """Show or hide every structure of ``group``."""
        values = self.groups().get(group)
        if values:
            self.document.set_all_visible(visible, values)

    def use_wholebody_names(self) -> None:
        """Name a map's values as the 104 whole-body structures (colours and groups too)."""
        from ctseg_gui.core.label_tables import wholebody_table
        from ctseg_gui.resources import resource_path

        self.document.apply_table(wholebody_table(resource_path()))
        self.refresh()

    def _rebuild_groups(self) -> None:
        groups = self.groups()
        if list(groups) != list(self.group_boxes):
            for box in self.group_boxes.values():
                self.groups_layout.removeWidget(box)
                box.deleteLater()
            self.group_boxes = {}
            for number, (group, values) in enumerate(groups.items()):
                box = QCheckBox(f"{group.capitalize()} ({len(values)})")
                box.setToolTip(f"Show or hide all {len(values)} {group} structures")
                box.clicked.connect(lambda _on, g=group: self._on_group_box_clicked(g))
                self.groups_layout.addWidget(box, number // 4, number % 4)
                self.group_boxes[group] = box
        self.groups_box.setVisible(bool(groups))
        self._sync_group_boxes(groups)
        self.names_button.setVisible(self._names_are_generic())

    def _sync_group_boxes(self, groups: dict[str, list[int]] | None = None) -> None:
        groups = self.groups() if groups is None else groups
        table = self.document.labels.table if self.document.labels is not None else None
        for group, box in self.group_boxes.items():
            shown = sum(table[v].visible for v in groups.get(group, [])) if table else 0
            total = len(groups.get(group, []))
            state = (
                Qt.CheckState.Checked
                if total and shown == total
                else Qt.CheckState.PartiallyChecked
                if shown
                else Qt.CheckState.Unchecked
            )
            box.setCheckState(state)

    def _on_group_box_clicked(self, group: str) -> None:
        values = self.groups().get(group, [])
        table = self.document.labels.table
        all_shown = all(table[v].visible for v in values)
        self.set_group_visible(group, not all_shown)

    def _names_are_generic(self) -> bool:
        labels = self.document.labels
        if labels is None or not len(labels.table):
            return False
        entries = list(labels.table)
        return max(e.value for e in entries) <= 104 and all(
            e.name == f"label {e.value}" for e in entries
        )

    def _on_document_labels_replaced(self, labels) -> None:
        self.document.editor.changed.connect(self._on_editor_changed)
        self.model.counts.reset(labels.array)
        self.refresh()

    def _on_editor_changed(self, region) -> None:
        self.model.counts.update(region)
        self._volume_timer.start()

    def _on_document_closed(self) -> None:
        self.model.counts.reset(None)
        self.refresh()

    def _on_document_table_changed(self) -> None:
        if self.model.rowCount() != len(self.document.labels.table):
            self.refresh()
        else:
            if list(self.groups()) != list(self.group_boxes):
                self._rebuild_groups()
            else:
                self._sync_group_boxes()
            top = self.model.index(0, 0)
            bottom = self.model.index(self.model.rowCount() - 1, len(COLUMNS) - 1)
            self.model.dataChanged.emit(top, bottom)

    def _source_row(self, index) -> int:
        return self.proxy.mapToSource(index).row()

    def _on_table_clicked(self, index) -> None:
        self.state.active_label = self.model.value_at(self._source_row(index))

    def _on_table_double_clicked(self, index) -> None:
        if index.column() != COLOUR:
            return
        value = self.model.value_at(self._source_row(index))
        old = QColor(*self.document.labels.table[value].color)
        colour = QColorDialog.getColor(old, self, "Structure colour")
        if colour.isValid():
            self.document.update_label(value, color=(colour.red(), colour.green(), colour.blue()))

    def _set_shown_rows_visible(self, visible: bool) -> None:
        rows = range(self.proxy.rowCount())
        values = [self.model.value_at(self._source_row(self.proxy.index(r, 0))) for r in rows]
        self.document.set_all_visible(visible, values)
