"""The main window: four linked views, label panel, toolbar, menus and background loading.

The window owns the :class:`Document` (image, labels, editor) and the :class:`ViewerState`; views and
panels subscribe to them. Other panels attach the same way: the model panel (a dock, when its module
exists) and the click-refinement tools (``set_tool``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
)

from ctseg_gui.core.document import Document
from ctseg_gui.core.viewer_state import VIEW_NAMES, ViewerState
from ctseg_gui.qt import dicom_actions, recent
from ctseg_gui.qt.click_tool import QtClickTool
from ctseg_gui.qt.edit_controls import install_edit_controls
from ctseg_gui.qt.label_panel import QtLabelPanel
from ctseg_gui.qt.loader import QtLoader
from ctseg_gui.qt.measure_tools import (
    MeasureTool,
    WindowLevelTool,
    clear_measurements,
    show_measurements_on_slice,
)
from ctseg_gui.qt.slice_view import QtSliceView
from ctseg_gui.qt.view3d import QtView3D
from ctseg_gui.qt.view_grid import QtViewGrid
from ctseg_gui.qt.window_controls import build_menus, build_toolbar

FILE_FILTER = (
    "CT images and sessions (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm *.ctseg);;All files (*)"
)
LABEL_FILTER = "Label maps (*.nii *.nii.gz *.nrrd *.mha);;All files (*)"


class QtMainWindow(QMainWindow):
    """ctseg-gui's main window.

    Signals
    -------
    first_image_shown()
        The slice views drew an image for the first time (start-up measurement, screenshots).
    """

    first_image_shown = Signal()

    def __init__(self, loader: QtLoader | None = None, interactive: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("ctseg-gui")
        self.interactive = interactive  # False: errors go to stderr, not to dialogs
        self.document = Document()
        self.state = ViewerState()
        self.loader = loader or QtLoader(self)
        self.loader.setParent(self)
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.measurements: list = []
        self._pending_labels: str | None = None
        self.session_path: Path | None = None  # the session file open (File > Save Session)
        self._pending_session = None  # (path, Session) while its image loads
        self._image_shown = False

        self.slice_views = {
            name: QtSliceView(name, self.state, self.document) for name in VIEW_NAMES
        }
        self.view3d = QtView3D(self.document)
        self.views = {**self.slice_views, "3d": self.view3d}
        self.grid = QtViewGrid(self.views, self.state)
        self.setCentralWidget(self.grid)
        for view in self.slice_views.values():
            view.hovered.connect(self._on_view_hovered)

        self.label_panel = QtLabelPanel(self.document, self.state)
        self.label_dock = self._dock("Structures", self.label_panel, "labels")
        from ctseg_gui.qt.stats_panel import QtStatsPanel

        self.stats_panel = QtStatsPanel(self.document)
        self.stats_dock = self._dock("Statistics", self.stats_panel, "statistics")
        self.tabifyDockWidget(self.label_dock, self.stats_dock)
        self.label_dock.raise_()  # statistics are computed only once their tab is shown
        self.model_panel = self._attach_model_panel()
        # The training panel (and pyqtgraph) is made when first shown: no start-up cost.
        self.training_panel = None
        self.training_dock = None
        # Wide enough for structure names such as "autochthon_right" next to their volumes.
        self.resizeDocks([self.label_dock], [460], Qt.Orientation.Horizontal)

        self._build_status_bar()
        self.tools = {
            "navigate": None,
            "window": WindowLevelTool(self.state),
            "ruler": MeasureTool("ruler", self.measurements),
            "rect": MeasureTool("rect", self.measurements),
            "circle": MeasureTool("circle", self.measurements),
            "clicks": QtClickTool(
                self.document, self.state, lambda: list(self.slice_views.values())
            ),
        }
        # Autosave (a minute after edits) only for a user's window, never for headless/test ones.
        self.autosave = None  # made after the first image (its import pulls in scipy)
        self.tool_actions = QActionGroup(self)
        build_toolbar(self)
        build_menus(self)
        self._bridge = None  # the compute bridge when there is no model panel to share
        self.edit_controls = install_edit_controls(self)
        dicom_actions.install(self)  # File > Open DICOM SEG, File > Export > SEG / RTSTRUCT
        self.setAcceptDrops(True)

        self.loader.busy.connect(self._on_loader_busy)
        self.loader.idle.connect(self._on_loader_idle)
        self.loader.image_loaded.connect(self._on_loader_image_loaded)
        self.loader.labels_loaded.connect(self._on_loader_labels_loaded)
        self.loader.series_found.connect(self._on_loader_series_found)
        self.loader.failed.connect(self._on_loader_failed)
        self.loader.warned.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.document.labels_replaced.connect(self._on_document_labels_replaced)
        self.state.cursor_changed.connect(lambda xyz: show_measurements_on_slice(self.measurements))
        self.resize(1600, 1000)

    # ---- opening -----------------------------------------------------------------------------
    def open_path(self, path: str, labels: str | None = None) -> None:
        """Load an image (file or DICOM folder) in the background, then ``labels`` onto it.

        A ``.ctseg`` session file opens the session (image, labels, clicks, measurements, view).
        """
        if str(path).lower().endswith(".ctseg"):
            from ctseg_gui.qt.session_actions import open_session

            open_session(self, path)
            return
        if not self._confirm_discard():
            return
        self._pending_session = None
        self._pending_labels = labels
        self.loader.open_image(path)

    def open_labels(self, path: str) -> None:
        """Load a label map onto the open image in the background."""
        if self.document.image is None:
            self._report(f"{path}: open an image before loading its labels")
            return
        if not self._confirm_discard():
            return
        self.loader.open_labels(path, self.document.image)

    def set_tool(self, tool) -> None:
        """Make ``tool`` (an object with press/move/release, or ``None``) handle slice clicks."""
        for view in self.slice_views.values():
            view.set_tool(tool)

    def select_tool(self, name: str) -> None:
        """Activate one of the built-in tools by name (``navigate``, ``window``, ``ruler``...)."""
        self.set_tool(self.tools[name])
        for action in self.tool_actions.actions():
            if action.data() == name:
                action.setChecked(True)

    def clear_measurements(self) -> None:
        """Remove rulers and ROIs."""
        clear_measurements(self.measurements)

    def reset_views(self) -> None:
        """Fit all views and the 3D camera."""
        self.state.reset_cameras()
        self.view3d.reset_camera()

    def render_all(self) -> None:
        """Draw every visible view now (screenshots, tests, benchmarks)."""
        for view in self.slice_views.values():
            if view.isVisible():
                view.render_now()
        self.view3d.rebuild(background=False)
        if self.view3d.isVisible():
            self.view3d.render_now()

    def undo(self) -> None:
        if self.document.editor is not None:
            self.document.editor.undo()

    def redo(self) -> None:
        if self.document.editor is not None:
            self.document.editor.redo()

    # ---- dialogs -----------------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CT image", "", FILE_FILTER)
        if path:
            self.open_path(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder")
        if path:
            self.open_path(path)

    def choose_labels(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load label map", "", LABEL_FILTER)
        if path:
            self.open_labels(path)

    def show_help(self) -> None:
        from ctseg_gui.qt.dialogs import QtHelpDialog

        QtHelpDialog(self).exec()

    # ---- loader events -----------------------------------------------------------------------
    def _on_loader_busy(self, message: str) -> None:
        self._progress.show()
        self._cancel.show()
        self._message.setText(message)

    def _on_loader_idle(self) -> None:
        if not self.loader.loading:
            self._progress.hide()
            self._cancel.hide()
            if self._message.text().endswith("…"):
                self._message.setText("Ready")

    def _on_loader_image_loaded(self, volume, path: str) -> None:
        session, self._pending_session = self._pending_session, None
        self.session_path = None
        self.clear_measurements()
        self.document.set_image(volume, path)
        center = volume.index_to_world((np.asarray(volume.size) - 1) // 2)  # a voxel centre
        self.state.cursor = center
        self.state.reset_cameras()
        self._message.setText(f"{Path(path).name}: {' x '.join(map(str, volume.size))} voxels")
        self.setWindowTitle(f"{Path(path).name} - ctseg-gui")
        if self.interactive:
            self._update_recent(recent.add_recent(path))
        for view in self.slice_views.values():
            if view.isVisible():
                view.render_now()
        if not self._image_shown:
            self._image_shown = True
            _report_first_image()
            self.first_image_shown.emit()
        if self.model_panel is not None and hasattr(self.model_panel, "set_volume"):
            # After the first draw: the panel may start the compute worker (torch) now.
            QTimer.singleShot(0, lambda: self.model_panel.set_volume(self.document.image))
        if self.interactive:
            from ctseg_gui.qt import session_actions
            from ctseg_gui.qt.edit_tools import QtAutosave

            if self.autosave is None:
                self.autosave = QtAutosave(
                    self.document, session_state=lambda: session_actions.session_state(self)
                )
            if not self._pending_labels and session is None:
                recovered = QtAutosave.offer_session_recovery(self, volume)  # after a crash
                if recovered is not None:
                    self.document.set_labels(recovered[0])
                    session_actions.restore_recovered_extras(self, recovered[1])
        if session is not None:
            from ctseg_gui.qt.session_actions import restore_session

            restore_session(self, session[0], session[1], volume)
        if self._pending_labels:
            labels, self._pending_labels = self._pending_labels, None
            self.loader.open_labels(labels, volume)

    def _on_loader_labels_loaded(self, labels, path: str) -> None:
        self.document.set_labels(labels, path)
        self._message.setText(f"Labels {Path(path).name}: {len(labels.table)} structures")

    def _on_loader_series_found(self, series: list, folder: str) -> None:
        from ctseg_gui.qt.dialogs import QtSeriesPicker

        picker = QtSeriesPicker(series, folder, self)
        if not self.interactive:  # headless: take the largest series, as the CLI does
            self.loader.open_image(folder, series[0].uid)
        elif picker.exec() and picker.selected_uid():
            self.loader.open_image(folder, picker.selected_uid())

    def _on_loader_failed(self, message: str) -> None:
        self._pending_labels = None
        self._pending_session = None
        self._report(message)

    def _on_document_labels_replaced(self, labels) -> None:
        editor = self.document.editor
        editor.history_changed.connect(self._on_editor_history_changed)
        self._on_editor_history_changed()

    def _on_editor_history_changed(self) -> None:
        editor = self.document.editor
        self.undo_action.setEnabled(bool(editor and editor.can_undo))
        self.redo_action.setEnabled(bool(editor and editor.can_redo))
        undo = editor.undo_description if editor else ""
        redo = editor.redo_description if editor else ""
        self.undo_action.setText(f"Undo {undo}" if undo else "Undo")
        self.redo_action.setText(f"Redo {redo}" if redo else "Redo")
        name = Path(self.document.path).name if self.document.path else ""
        if name:
            self.setWindowTitle(f"{name}{' *' if self.document.modified else ''} - ctseg-gui")

    def _on_view_hovered(self, world) -> None:
        image = self.document.image
        if world is None or image is None:
            self._hover.setText("")
            return
        ijk = image.world_to_index(world)
        index = tuple(int(round(c)) for c in ijk)
        text = f"LPS ({world[0]:.1f}, {world[1]:.1f}, {world[2]:.1f}) mm"
        if image.contains_index(index):
            i, j, k = index
            hu = image.array[k, j, i]
            text = f"voxel ({i}, {j}, {k})   {text}   {float(hu):.0f} HU"
            labels = self.document.labels
            if labels is not None and labels.array[k, j, i]:
                value = int(labels.array[k, j, i])
                name = labels.table[value].name if value in labels.table else str(value)
                text += f"   {name}"
        self._hover.setText(text)

    # ---- helpers -----------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        self.errors.append(message)
        self._message.setText(message)
        if self.interactive:
            QMessageBox.critical(self, "ctseg-gui", message)
        else:
            import sys

            print(f"ctseg-gui: {message}", file=sys.stderr)

    def _confirm_discard(self) -> bool:
        if not (self.interactive and self.document.modified):
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self,
            "Unsaved label edits",
            "The label map has edits that are not saved. Save them first?",
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Save,
        )
        if answer == buttons.Save:
            from ctseg_gui.qt.label_actions import save_labels

            return save_labels(self)
        return answer == buttons.Discard

    def compute_bridge(self):
        """The compute worker bridge: the model panel's when there is one, else the window's."""
        bridge = getattr(self.model_panel, "bridge", None)
        if bridge is None:
            if self._bridge is None:
                from ctseg_gui.qt.worker_bridge import QtComputeBridge

                self._bridge = QtComputeBridge(parent=self)
            bridge = self._bridge
        return bridge

    def _dock(self, title: str, widget, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return dock

    def _attach_model_panel(self):
        # The model panel is built by another part of the project; the viewer works without it.
        try:
            from ctseg_gui.qt.models_panel import QtModelPanel
        except ImportError:
            return None
        try:
            panel = QtModelPanel(show_dialogs=self.interactive)
        except Exception as error:  # noqa: BLE001 - a broken panel must not stop the viewer
            self.errors.append(f"model panel unavailable: {error}")
            return None
        panel.result_ready.connect(self._on_model_panel_result_ready)
        if hasattr(panel, "status_changed"):
            panel.status_changed.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.model_dock = self._dock("Models", panel, "models")
        return panel

    def show_training_panel(self, on: bool = True) -> None:
        """Show (making it the first time) or hide the training dock."""
        if self.training_panel is None:
            if not on:
                return
            from ctseg_gui.qt.training_panel import QtTrainingPanel

            self.training_panel = QtTrainingPanel(self.document)
            self.training_panel.gpu_claimed.connect(self._on_training_gpu_claimed)
            self.training_dock = self._dock("Training", self.training_panel, "training")
            if self.model_panel is not None:
                self.training_panel.model_installed.connect(
                    lambda _id: self.model_panel.refresh_models()
                )
                self.tabifyDockWidget(self.model_dock, self.training_dock)
            # Closed with its own button: the menu item follows (not on a tab switch).
            self.training_dock.toggleViewAction().toggled.connect(self.training_action.setChecked)
        self.training_dock.setVisible(on)
        if on:
            self.training_dock.raise_()

    def _on_training_gpu_claimed(self, taken: bool) -> None:
        if self.model_panel is not None and hasattr(self.model_panel, "set_gpu_taken"):
            self.model_panel.set_gpu_taken(taken)
        if taken:
            self.statusBar().showMessage(
                "Training holds the GPU: model runs go to the CPU until it ends.", 15000
            )

    def _on_model_panel_result_ready(self, result) -> None:
        if self.document.image is None:
            return
        self.document.apply_result(result, "model result")

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self._message = QLabel("Open a CT: File > Open, or drop a file or folder here")
        self._hover = QLabel("")
        self._progress = QProgressBar(maximumWidth=160, minimum=0, maximum=0)
        self._cancel = QPushButton("Cancel")
        self._cancel.clicked.connect(self.loader_cancel)
        bar.addWidget(self._message, 1)
        bar.addPermanentWidget(self._hover)
        bar.addPermanentWidget(self._progress)
        bar.addPermanentWidget(self._cancel)
        self._progress.hide()
        self._cancel.hide()

    def loader_cancel(self) -> None:
        """Cancel the running load (its result is dropped)."""
        self.loader.cancel()
        self._pending_session = None
        self._message.setText("Loading cancelled")

    def _update_recent(self, paths: list[str]) -> None:
        menu = self.recent_menu
        menu.clear()
        for path in paths:
            action = menu.addAction(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_path(p))
        menu.setEnabled(bool(paths))

    # ---- Qt events ---------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])

    def closeEvent(self, event) -> None:  # noqa: N802
        if self._confirm_discard():
            self.loader.cancel()
            if self.training_panel is not None:
                # The run checkpoints and exits; Resume continues it in the next session.
                self.training_panel.stop()
            event.accept()
        else:
            event.ignore()


def _report_first_image() -> None:
    # Start-up measurement hook (benchmarks/bench_viewer.py): time the first CT slice was drawn.
    target = os.environ.get("CTSEG_REPORT_FIRST_IMAGE")
    if target:
        tmp = Path(f"{target}.tmp")
        tmp.write_text(f"{time.time():.6f}\n")
        tmp.replace(target)
