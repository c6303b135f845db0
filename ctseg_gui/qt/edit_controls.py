"""The editing toolbar and menus: brush / eraser settings, active structure, click model.

:func:`install_edit_controls` adds to a built main window: the Brush (B) and Eraser (E) tools in
the window's tool group, an *Edit* toolbar (brush size in mm, 2D disc / 3D sphere, optional HU
range, active structure with *New*, island size, click model), File > Save Labels (Ctrl+S) /
Save Labels As…, Edit > Fill holes / Keep largest island / Remove small islands, and a *Labels*
menu. The controls write into one :class:`QtEditControls`, the only owner of the settings; the
brush and eraser read them at the start of every stroke.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QMenu,
    QSlider,
    QToolBar,
    QToolButton,
)

from ctseg_gui.qt import label_actions
from ctseg_gui.qt.edit_tools import QtBrushTool

BUILTIN_CLICKS = "Built-in (no weights)"


class QtEditControls(QToolBar):
    """Brush/eraser settings, active structure and click model, as a toolbar.

    Signals
    -------
    click_model_changed(object)
        The click tool's model: an installed model id, or ``None`` for the built-in one.
    """

    click_model_changed = Signal(object)

    def __init__(self, window) -> None:
        super().__init__("Edit", window)
        self.setObjectName("edit_toolbar")
        self.window_ = window
        document, state = window.document, window.state
        self.document, self.state = document, state
        self.brush = QtBrushTool(document, state)
        self.eraser = QtBrushTool(document, state, erase=True)
        for tool in (self.brush, self.eraser):
            tool.press = _reading_settings(self, tool, tool.press)

        self.size_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=50, value=5)
        self.size_slider.setFixedWidth(80)
        self.size_box = QDoubleSpinBox(
            minimum=0.5, maximum=50.0, value=5.0, decimals=1, suffix=" mm"
        )
        self.size_box.setToolTip("Brush radius in millimetres")
        self.size_slider.valueChanged.connect(lambda v: self.size_box.setValue(float(v)))
        self.size_box.valueChanged.connect(self._on_size_box_changed)
        self.shape_box = QComboBox()
        self.shape_box.addItems(["2D disc", "3D sphere"])
        self.shape_box.setToolTip("Paint a disc in the view's slice, or a sphere across slices")
        self.hu_check = QCheckBox("HU")
        self.hu_check.setToolTip("Only paint voxels whose HU lie in the range")
        self.hu_min = QDoubleSpinBox(minimum=-1024, maximum=3071, value=-100, decimals=0)
        self.hu_max = QDoubleSpinBox(minimum=-1024, maximum=3071, value=300, decimals=0)
        for box, tip in ((self.hu_min, "Lowest HU painted"), (self.hu_max, "Highest HU painted")):
            box.setToolTip(tip)
            box.setEnabled(False)
        self.hu_check.toggled.connect(self.hu_min.setEnabled)
        self.hu_check.toggled.connect(self.hu_max.setEnabled)
        self.structure_box = QComboBox()
        self.structure_box.setMinimumWidth(150)
        self.structure_box.setToolTip("Structure the brush, eraser and clicks edit")
        self.structure_box.activated.connect(self._on_structure_box_activated)
        self.new_button = QToolButton(text="New…")
        self.new_button.setAutoRaise(True)
        self.new_button.setToolTip("Add a structure and make it the active one")
        self.new_button.clicked.connect(lambda: label_actions.add_structure(window))
        self.island_box = QDoubleSpinBox(minimum=0.01, maximum=10000, value=1.0, decimals=2)
        self.island_box.setSuffix(" mL")
        self.island_box.setToolTip("Remove small islands: parts smaller than this go")
        self.click_box = _RefreshingComboBox(self.refresh_click_models)
        self.click_box.setToolTip("Model used by the click tool (K)")
        self.click_box.activated.connect(self._on_click_box_activated)

        window.tools["brush"] = self.brush
        window.tools["eraser"] = self.eraser
        self.brush_action = _tool_action(
            window, "brush", "Brush", "B", "Paint the active structure"
        )
        self.eraser_action = _tool_action(
            window, "eraser", "Eraser", "E", "Erase the active structure (right drag also erases)"
        )
        self.addAction(self.brush_action)
        self.addAction(self.eraser_action)
        self.addWidget(QLabel(" Size "))
        self.addWidget(self.size_slider)
        self.addWidget(self.size_box)
        self.addWidget(self.shape_box)
        self.addWidget(self.hu_check)
        self.addWidget(self.hu_min)
        self.addWidget(QLabel("–"))
        self.addWidget(self.hu_max)
        self.addSeparator()
        self.addWidget(QLabel(" Structure "))
        self.addWidget(self.structure_box)
        self.addWidget(self.new_button)
        self.addSeparator()
        from ctseg_gui.qt.window_controls import _action

        self.fill_action = _action(window, "Fill holes", lambda: run_operation(window, "fill"))
        self.largest_action = _action(
            window, "Keep largest island", lambda: run_operation(window, "largest")
        )
        self.islands_action = _action(
            window, "Remove small islands", lambda: run_operation(window, "small")
        )
        self.fill_action.setToolTip("Fill enclosed holes of the active structure")
        self.largest_action.setToolTip("Keep only the largest part of the active structure")
        self.cleanup_button = QToolButton(text="Clean up")
        self.cleanup_button.setToolTip("Fill holes or remove islands of the active structure")
        self.cleanup_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        cleanup = QMenu(self.cleanup_button)
        for action in (self.fill_action, self.largest_action, self.islands_action):
            cleanup.addAction(action)
        self.cleanup_button.setMenu(cleanup)
        self.addWidget(self.cleanup_button)
        self.addWidget(QLabel(" Island < "))
        self.addWidget(self.island_box)
        self.island_box.valueChanged.connect(self._on_island_box_changed)
        self._on_island_box_changed(self.island_box.value())
        self.addSeparator()
        self.addWidget(QLabel(" Click model "))
        self.addWidget(self.click_box)

        state.active_label_changed.connect(lambda _v: self.refresh_structures())
        document.table_changed.connect(self.refresh_structures)
        document.labels_replaced.connect(self._on_document_labels_replaced)
        document.closed.connect(self.refresh_structures)
        self.refresh_structures()
        self.refresh_click_models()

    # ---- settings ----------------------------------------------------------------------------
    @property
    def radius_mm(self) -> float:
        return float(self.size_box.value())

    @property
    def sphere(self) -> bool:
        return self.shape_box.currentIndex() == 1

    @property
    def hu_range(self) -> tuple[float, float] | None:
        if not self.hu_check.isChecked():
            return None
        low, high = sorted((self.hu_min.value(), self.hu_max.value()))
        return (low, high)

    def _on_island_box_changed(self, value: float) -> None:
        self.islands_action.setText(f"Remove small islands (< {value:g} mL)")
        self.islands_action.setToolTip(f"Remove parts of the active structure below {value:g} mL")

    def _on_size_box_changed(self, value: float) -> None:
        with QSignalBlocker(self.size_slider):
            self.size_slider.setValue(round(value))

    # ---- active structure --------------------------------------------------------------------
    def refresh_structures(self) -> None:
        """Re-list the document's structures; the active one is selected (``(new)`` if unnamed)."""
        labels = self.document.labels
        active = self.state.active_label
        entries = [(e.value, e.name) for e in labels.table] if labels is not None else []
        if active not in {v for v, _ in entries}:
            entries.append((active, f"label {active} (new)"))
        entries.sort()
        with QSignalBlocker(self.structure_box):
            self.structure_box.clear()
            for value, name in entries:
                self.structure_box.addItem(f"{value}: {name}", value)
            self.structure_box.setCurrentIndex(self.structure_box.findData(active))

    def _on_document_labels_replaced(self, _labels) -> None:
        self.document.editor.changed.connect(self._on_editor_changed)
        self.refresh_structures()

    def _on_editor_changed(self, _region) -> None:
        # The first stroke of an unnamed structure adds it to the table ("label N").
        if self.structure_box.currentText().endswith("(new)"):
            labels = self.document.labels
            if labels is not None and self.state.active_label in labels.table:
                self.refresh_structures()

    def change_size(self, factor: float) -> None:
        """Scale the brush radius (keys ``[`` and ``]``)."""
        self.size_box.setValue(self.size_box.value() * factor)

    def _on_structure_box_activated(self, index: int) -> None:
        value = self.structure_box.itemData(index)
        if value is not None:
            self.state.active_label = int(value)

    # ---- click model -------------------------------------------------------------------------
    def refresh_click_models(self) -> None:
        """List the built-in refiner and every installed Deepgrow / DeepEdit model."""
        current = self.click_box.currentData()
        with QSignalBlocker(self.click_box):
            self.click_box.clear()
            self.click_box.addItem(BUILTIN_CLICKS, None)
            for model_id, title, _path in interactive_models():
                self.click_box.addItem(title, model_id)
            index = self.click_box.findData(current)
            self.click_box.setCurrentIndex(max(index, 0))

    def select_click_model(self, model_id: str | None) -> None:
        """Use ``model_id`` (an installed interactive model) or the built-in refiner for clicks."""
        index = self.click_box.findData(model_id)
        if index < 0:
            raise ValueError(f"no installed interactive model {model_id!r}")
        self.click_box.setCurrentIndex(index)
        self._on_click_box_activated(index)

    def _on_click_box_activated(self, index: int) -> None:
        model_id = self.click_box.itemData(index)
        tool = self.window_.tools["clicks"]
        if model_id is None:
            tool.set_refiner_factory(None)
        else:
            path = next(p for m, _t, p in interactive_models() if m == model_id)
            tool.set_refiner_factory(_worker_refiner_factory(self.window_, path))
        self.click_model_changed.emit(model_id)


class _RefreshingComboBox(QComboBox):
    # Re-lists installed models each time it opens: a model installed meanwhile shows up.
    def __init__(self, refresh) -> None:
        super().__init__()
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802
        self._refresh()
        super().showPopup()


def _reading_settings(controls: QtEditControls, tool: QtBrushTool, press):
    # The brush reads the toolbar when a stroke starts, so a change applies to the next stroke.
    def wrapped(event) -> bool:
        tool.radius_mm = controls.radius_mm
        tool.sphere = controls.sphere
        tool.hu_range = controls.hu_range
        return press(event)

    return wrapped


def _tool_action(window, name: str, text: str, key: str, tip: str):
    from ctseg_gui.qt.window_controls import _action

    action = _action(window, text, lambda: window.select_tool(name), key, tip)
    action.setCheckable(True)
    action.setData(name)
    window.tool_actions.addAction(action)
    if getattr(window, "tools_menu", None) is not None:
        window.tools_menu.addAction(action)
    return action


def _worker_refiner_factory(window, bundle_path):
    """``factory(image)`` giving a WorkerRefiner on the window's compute worker."""
    from ctseg_gui.qt.click_tool import WorkerRefiner

    def factory(image):
        bridge = window.compute_bridge()
        device = "auto"
        panel = window.model_panel
        if panel is not None and hasattr(panel, "device"):
            device = panel.device or "auto"
        return WorkerRefiner(bridge.client, image, str(bundle_path), device=device)

    return factory


def interactive_models() -> list[tuple[str, str, object]]:
    """Installed click models: ``(model id, title, bundle folder)``, without importing torch.

    A model counts when its catalog manifest says ``"interactive": true``; a bundle not in the
    catalog counts when its ``configs/inference.json`` uses Deepgrow or DeepEdit transforms.
    """
    try:
        from ctseg_gui.inference.catalog import load_catalog
        from ctseg_gui.inference.manager import list_installed

        catalog = load_catalog()
        installed = list_installed()
    except Exception:  # noqa: BLE001 - a broken catalog leaves the built-in refiner
        return []
    found = []
    for model in installed:
        manifest = catalog.get(model.model_id)
        if manifest is not None:
            if manifest.raw.get("interactive"):
                found.append((model.model_id, manifest.display_name, model.path))
        elif _looks_interactive(model.path):
            found.append((model.model_id, model.model_id, model.path))
    return found


def _looks_interactive(bundle) -> bool:
    config = bundle / "configs" / "inference.json"
    try:
        text = config.read_text(errors="replace")
    except OSError:
        return False
    return any(k in text for k in ("deepgrow", "Deepgrow", "DeepEdit", "SpatialCropGuidanced"))


# ---- menus --------------------------------------------------------------------------------------
def install_edit_controls(window) -> QtEditControls:
    """Add the edit toolbar, Save actions, edit operations and the Labels menu to ``window``."""
    from ctseg_gui.qt.window_controls import _action

    window.addToolBarBreak()
    controls = QtEditControls(window)
    window.addToolBar(controls)

    save = _action(window, "Save Labels", lambda: label_actions.save_labels(window), "Ctrl+S")
    save_as = _action(
        window, "Save Labels As…", lambda: label_actions.save_labels(window, ask=True),
        "Ctrl+Shift+S",
    )  # fmt: skip
    window.save_labels_action, window.save_labels_as_action = save, save_as
    _action(window, "Smaller brush", lambda: controls.change_size(1 / 1.25), "[")
    _action(window, "Larger brush", lambda: controls.change_size(1.25), "]")
    file_menu = window.file_menu
    anchor = window.labels_action
    actions = file_menu.actions()
    position = actions[actions.index(anchor) + 1] if anchor in actions[:-1] else None
    file_menu.insertActions(position, [save, save_as])

    edit = window.edit_menu
    edit.addSeparator()
    window.fill_holes_action = controls.fill_action
    window.largest_island_action = controls.largest_action
    window.small_islands_action = controls.islands_action
    for action in (window.fill_holes_action, window.largest_island_action,
                   window.small_islands_action):  # fmt: skip
        edit.addAction(action)

    labels_menu = window.menuBar().addMenu("&Labels")
    window.labels_menu = labels_menu

    def rebuild() -> None:
        labels_menu.clear()
        value = window.state.active_label
        known = window.document.labels is not None and value in window.document.labels.table
        label_actions.fill_structure_menu(labels_menu, window, value if known else None)

    labels_menu.aboutToShow.connect(rebuild)
    # The Labels menu is the last of the bar's menus before Help.
    bar = window.menuBar()
    help_action = next((a for a in bar.actions() if a.text() == "&Help"), None)
    if help_action is not None:
        bar.insertMenu(help_action, labels_menu)
    label_actions.attach_label_table_menu(window)
    window.tools["clicks"].failed.connect(
        lambda text: window.statusBar().showMessage(f"Click update failed: {text}", 10000)
    )
    return controls


def run_operation(window, name: str) -> bool:
    """Fill holes / keep the largest island / remove small islands of the active structure."""
    from ctseg_gui.interactive import editing

    editor = window.document.editor
    if editor is None:
        return False
    value = window.state.active_label
    if name == "fill":
        changed = editing.fill_holes(editor, value)
    elif name == "largest":
        changed = editing.keep_largest_island(editor, value)
    else:
        changed = editing.remove_small_islands(
            editor, value, window.edit_controls.island_box.value()
        )
    if not changed:
        window.statusBar().showMessage("Nothing to change for the active structure", 5000)
    return changed
