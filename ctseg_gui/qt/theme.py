"""Dark theme: reading rooms are dim, and a bright frame around a CT hurts grey-level judgement."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_STYLE = """
QMainWindow::separator { background: #202226; width: 3px; height: 3px; }
QToolBar { background: #24262b; border: none; spacing: 3px; padding: 2px; }
QToolButton { padding: 3px 6px; border-radius: 3px; }
QToolButton:checked { background: #3d5a80; }
QToolButton:hover { background: #353a42; }
QStatusBar { background: #1b1d21; color: #d6d6d0; }
QStatusBar QLabel { padding: 0 6px; }
QDockWidget::title { background: #2a2d33; padding: 4px; }
QTableView { gridline-color: #34373d; selection-background-color: #3d5a80; }
QHeaderView::section { background: #2a2d33; color: #d6d6d0; border: none; padding: 3px 5px; }
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox { background: #17181b; border: 1px solid #3a3d44;
    border-radius: 3px; padding: 2px 4px; }
QProgressBar { border: 1px solid #3a3d44; border-radius: 3px; background: #17181b;
    text-align: center; max-height: 14px; }
QProgressBar::chunk { background: #3d7ab8; }
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette and a few flat touches."""
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#202226",
        QPalette.ColorRole.WindowText: "#d6d6d0",
        QPalette.ColorRole.Base: "#17181b",
        QPalette.ColorRole.AlternateBase: "#1f2125",
        QPalette.ColorRole.ToolTipBase: "#2a2d33",
        QPalette.ColorRole.ToolTipText: "#e8e8e2",
        QPalette.ColorRole.Text: "#d6d6d0",
        QPalette.ColorRole.Button: "#2a2d33",
        QPalette.ColorRole.ButtonText: "#d6d6d0",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#3d5a80",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6fa8dc",
        QPalette.ColorRole.PlaceholderText: "#7d8088",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(disabled, role, QColor("#6a6d74"))
    app.setPalette(palette)
    app.setStyleSheet(_STYLE)
