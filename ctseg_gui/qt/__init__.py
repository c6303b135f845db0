"""PySide6 widgets, main window, panels and controllers."""
