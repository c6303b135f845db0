"""Arranges the four views: 2x2, one large + three small, or a single view.

The views are never re-parented (VTK windows dislike it); a layout change only moves them inside
one grid layout and hides the ones a single-view layout leaves out.
"""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QWidget

from ctseg_gui.core.viewer_state import ViewerState

ORDER = ("axial", "3d", "coronal", "sagittal")


class QtViewGrid(QWidget):
    """Holds the views named ``axial``, ``coronal``, ``sagittal`` and ``3d`` and lays them out."""

    def __init__(self, views: dict[str, QWidget], state: ViewerState, parent=None) -> None:
        super().__init__(parent)
        self.views = views
        self.state = state
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._previous = ("2x2", state.main_view)
        for view in views.values():
            view.setParent(self)
            if hasattr(view, "maximise_requested"):
                view.maximise_requested.connect(self._on_view_maximise_requested)
        state.layout_changed.connect(self._on_state_layout_changed)
        self._apply(state.layout, state.main_view)

    def visible_views(self) -> list[str]:
        """Names of the views shown now."""
        return [name for name, view in self.views.items() if not view.isHidden()]

    def _on_view_maximise_requested(self, name: str) -> None:
        # Double click toggles: maximise a view, and restore the previous layout from single.
        if self.state.layout == "single":
            layout, main = self._previous
            self.state.set_layout(layout, main if layout != "single" else name)
        else:
            self._previous = (self.state.layout, self.state.main_view)
            self.state.set_layout("single", name)

    def _on_state_layout_changed(self, layout: str, main: str) -> None:
        self._apply(layout, main)

    def _apply(self, layout: str, main: str) -> None:
        for view in self.views.values():
            self._grid.removeWidget(view)
        for row in range(3):
            self._grid.setRowStretch(row, 0)
        for column in range(3):
            self._grid.setColumnStretch(column, 0)
        names = [n for n in ORDER if n in self.views]
        if layout == "single":
            for name, view in self.views.items():
                view.setVisible(name == main)
            self._grid.addWidget(self.views[main], 0, 0)
            self._grid.setRowStretch(0, 1)
            self._grid.setColumnStretch(0, 1)
        elif layout == "1+3":
            others = [n for n in names if n != main]
            self._grid.addWidget(self.views[main], 0, 0, len(others), 1)
            for row, name in enumerate(others):
                self._grid.addWidget(self.views[name], row, 1)
                self._grid.setRowStretch(row, 1)
            self._grid.setColumnStretch(0, 3)
            self._grid.setColumnStretch(1, 1)
            for view in self.views.values():
                view.setVisible(True)
        else:
            for index, name in enumerate(names):
                self._grid.addWidget(self.views[name], index // 2, index % 2)
            for n in range(2):
                self._grid.setRowStretch(n, 1)
                self._grid.setColumnStretch(n, 1)
            for view in self.views.values():
                view.setVisible(True)
