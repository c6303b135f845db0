"""Toolbar and menus of the main window (kept apart so the window module stays readable)."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QStyle, QToolBar

from ctseg_gui.core.viewer_state import WINDOW_PRESETS

TOOLS = (
    ("navigate", "Navigate", "N", "Click or drag to move the crosshair"),
    ("window", "W/L", "W", "Drag: horizontal = width, vertical = level"),
    ("ruler", "Ruler", "M", "Drag to measure a distance in mm"),
    ("rect", "Rect ROI", "G", "Drag a rectangle: HU mean, sd, min, max, area"),
    ("circle", "Circle ROI", "C", "Drag from the centre: HU mean, sd, min, max, area"),
    ("clicks", "Clicks", "K", "Left click adds, right or Shift click removes the active structure"),
)
LAYOUT_ACTIONS = (("2x2", "2 x 2", "F5"), ("1+3", "1 + 3", "F6"), ("single", "Single", "F7"))


def _action(window, text: str, slot, shortcut: str | None = None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
    action.triggered.connect(lambda checked=False: slot())
    window.addAction(action)  # shortcuts work while a view has the focus
    return action


def build_toolbar(window) -> None:
    """File actions, tools, window/level controls and layouts."""
    style = window.style()
    bar = QToolBar("Main", window)
    bar.setObjectName("main_toolbar")
    bar.setMovable(False)
    window.addToolBar(bar)
    window.open_action = _action(window, "Open…", window.choose_file, "Ctrl+O", "Open a CT file")
    window.open_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton))
    window.folder_action = _action(
        window, "DICOM…", window.choose_folder, "Ctrl+Shift+O", "Open a DICOM folder"
    )
    window.folder_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
    window.labels_action = _action(
        window, "Labels…", window.choose_labels, "Ctrl+L", "Load a label map onto the image"
    )
    for action in (window.open_action, window.folder_action, window.labels_action):
        bar.addAction(action)
    bar.addSeparator()

    group = window.tool_actions
    group.setExclusive(True)
    for name, text, key, tip in TOOLS:
        action = _action(window, text, lambda n=name: window.select_tool(n), key, tip)
        action.setCheckable(True)
        action.setData(name)
        group.addAction(action)
        bar.addAction(action)
    group.actions()[0].setChecked(True)
    bar.addSeparator()

    bar.addWidget(QLabel(" Window "))
    window.preset_box = QComboBox()
    window.preset_box.addItems([*WINDOW_PRESETS, "Custom"])
    window.preset_box.setToolTip("Window/level preset (keys 1-6)")
    window.preset_box.textActivated.connect(
        lambda name: window.state.apply_preset(name) if name in WINDOW_PRESETS else None
    )
    bar.addWidget(window.preset_box)
    window.width_box = QDoubleSpinBox(minimum=1, maximum=10000, decimals=0, prefix="W ")
    window.level_box = QDoubleSpinBox(minimum=-3000, maximum=5000, decimals=0, prefix="L ")
    for box in (window.width_box, window.level_box):
        box.setKeyboardTracking(False)
        box.setMinimumWidth(86)
        box.valueChanged.connect(
            lambda _=0: window.state.set_window(window.width_box.value(), window.level_box.value())
        )
        bar.addWidget(box)

    def on_window_changed(width: float, level: float) -> None:
        with QSignalBlocker(window.width_box), QSignalBlocker(window.level_box):
            window.width_box.setValue(width)
            window.level_box.setValue(level)
        window.preset_box.setCurrentText(window.state.preset_name or "Custom")

    window.state.window_changed.connect(on_window_changed)
    on_window_changed(*window.state.window)
    window.preset_actions = {
        name: _action(window, name, lambda n=name: window.state.apply_preset(n), str(number))
        for number, name in enumerate(WINDOW_PRESETS, start=1)
    }
    bar.addSeparator()

    window.layout_actions = {}
    for layout, text, key in LAYOUT_ACTIONS:
        action = _action(window, text, lambda lay=layout: _set_layout(window, lay), key, "Layout")
        window.layout_actions[layout] = action
        bar.addAction(action)
    window.reset_action = _action(window, "Reset", window.reset_views, "R", "Fit all views")
    bar.addAction(window.reset_action)


def _set_layout(window, layout: str) -> None:
    state = window.state
    main = state.main_view if state.main_view in window.views else "axial"
    state.set_layout(layout, main)


def build_menus(window) -> None:
    """File, Edit, View, Tools and Help menus."""
    menus = window.menuBar()
    file_menu = menus.addMenu("&File")
    window.file_menu = file_menu
    file_menu.addAction(window.open_action)
    file_menu.addAction(window.folder_action)
    window.recent_menu = file_menu.addMenu("Open &recent")
    from ctseg_gui.qt import recent

    window._update_recent(recent.load_recent())
    file_menu.addSeparator()
    file_menu.addAction(window.labels_action)
    file_menu.addSeparator()
    from ctseg_gui.qt import session_actions

    window.open_session_action = _action(
        window, "Open Session…", lambda: session_actions.choose_session(window), "Ctrl+Alt+O"
    )
    window.save_session_action = _action(
        window, "Save Session", lambda: session_actions.save_session(window), "Ctrl+Alt+S"
    )
    window.save_session_as_action = _action(
        window, "Save Session As…", lambda: session_actions.save_session(window, ask=True)
    )
    for action in (
        window.open_session_action,
        window.save_session_action,
        window.save_session_as_action,
    ):
        file_menu.addAction(action)
    file_menu.addSeparator()
    file_menu.addAction(_action(window, "Save screenshot…", lambda: _save_shot(window)))
    file_menu.addAction(_action(window, "Quit", window.close, "Ctrl+Q"))

    edit = menus.addMenu("&Edit")
    window.edit_menu = edit
    window.undo_action = _action(window, "Undo", window.undo, "Ctrl+Z")
    window.redo_action = _action(window, "Redo", window.redo, "Ctrl+Shift+Z")
    window.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    window.undo_action.setEnabled(False)
    window.redo_action.setEnabled(False)
    edit.addAction(window.undo_action)
    edit.addAction(window.redo_action)

    view = menus.addMenu("&View")
    for action in window.layout_actions.values():
        view.addAction(action)
    view.addAction(window.reset_action)
    view.addSeparator()
    overlay = _action(window, "Label overlay", lambda: None, "T")
    overlay.setCheckable(True)
    overlay.setChecked(True)
    overlay.toggled.connect(lambda on: setattr(window.state, "labels_visible", on))
    view.addAction(overlay)
    cross = _action(window, "Crosshair", lambda: None, "X")
    cross.setCheckable(True)
    cross.setChecked(True)
    cross.toggled.connect(lambda on: _show_crosshair(window, on))
    view.addAction(cross)
    smooth = QAction("Smooth CT pixels", window, checkable=True, checked=True)
    smooth.toggled.connect(lambda on: setattr(window.state, "interpolate", on))
    view.addAction(smooth)
    volume = QAction("CT volume rendering in 3D", window, checkable=True)
    volume.toggled.connect(window.view3d.set_volume_rendering)
    view.addAction(volume)
    view.addAction(
        _action(window, "Name labels as whole-body 104 structures", lambda: _wholebody(window))
    )
    view.addAction(window.label_dock.toggleViewAction())
    if getattr(window, "model_dock", None) is not None:
        view.addAction(window.model_dock.toggleViewAction())
    window.training_action = QAction("Training panel", window, checkable=True)
    window.training_action.toggled.connect(window.show_training_panel)
    view.addAction(window.training_action)
    presets = view.addMenu("Window presets")
    for name, (width, level) in WINDOW_PRESETS.items():
        action = presets.addAction(f"{name}  (W {width:.0f} / L {level:.0f})")
        action.triggered.connect(lambda checked=False, n=name: window.state.apply_preset(n))

    tools = menus.addMenu("&Tools")
    window.tools_menu = tools
    for action in window.tool_actions.actions():
        tools.addAction(action)
    tools.addAction(_action(window, "Clear rulers and ROIs", window.clear_measurements, "Esc"))

    models = menus.addMenu("&Models")
    window.models_menu = models
    window.manage_models_action = _action(window, "Manage models…", lambda: _manage(window))
    models.addAction(window.manage_models_action)

    help_menu = menus.addMenu("&Help")
    help_menu.addAction(_action(window, "Keyboard and mouse…", window.show_help, "F1"))


def _manage(window):
    """The model manager: the model panel's (its picker follows installs), else the window's."""
    panel = getattr(window, "model_panel", None)
    if panel is not None and hasattr(panel, "manage_models"):
        return panel.manage_models()
    from ctseg_gui.qt.model_manager_dialog import QtModelManagerDialog

    dialog = getattr(window, "model_manager_dialog", None)
    if dialog is None:
        dialog = QtModelManagerDialog(window, show_dialogs=window.interactive)
        window.model_manager_dialog = dialog
    dialog.refresh()
    dialog.show()
    dialog.raise_()
    return dialog


def _save_shot(window) -> None:
    from PySide6.QtWidgets import QFileDialog

    from ctseg_gui.qt.screenshot import grab_window

    path, _ = QFileDialog.getSaveFileName(window, "Save screenshot", "ctseg.png", "PNG (*.png)")
    if path:
        grab_window(window).save(path)


def _wholebody(window) -> None:
    # For label files without a sidecar from TotalSegmentator v1 / MONAI's wholeBody bundle.
    from ctseg_gui.core.label_tables import wholebody_table
    from ctseg_gui.resources import resource_path

    window.document.apply_table(wholebody_table(resource_path()))


def _show_crosshair(window, on: bool) -> None:
    for view in window.slice_views.values():
        view.scene.show_crosshair(on)
        view.request_render()
