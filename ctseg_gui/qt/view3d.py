"""The 3D view widget: label surfaces (rebuilt a moment after edits) and optional CT rendering."""

from __future__ import annotations

import vtkmodules.qt
from PySide6.QtCore import QTimer, Signal

vtkmodules.qt.PyQtImpl = "PySide6"
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget  # noqa: E402
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor  # noqa: E402

from ctseg_gui.core.document import Document  # noqa: E402
from ctseg_gui.render.scene3d import Scene3D  # noqa: E402


class QtView3D(QVTKRenderWindowInteractor):
    """Rotate with the left button, pan with the middle, zoom with the right button or wheel.

    Signals
    -------
    maximise_requested(str)
        Double click (``"3d"``).
    """

    maximise_requested = Signal(str)

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.view = "3d"
        self.document = document
        self.scene = Scene3D()
        self.GetRenderWindow().AddRenderer(self.scene.renderer)
        self._Iren.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self._marker = _orientation_marker(self._Iren)
        self.volume_rendering = False
        self._dirty = False
        # Surfaces cost tens of milliseconds to seconds: rebuild once edits pause.
        self._rebuild_timer = QTimer(self, singleShot=True, interval=300)
        self._rebuild_timer.timeout.connect(self.rebuild)
        self.setMinimumSize(120, 120)
        document.image_loaded.connect(self._on_document_image_loaded)
        document.labels_replaced.connect(self._on_document_labels_replaced)
        document.table_changed.connect(self.schedule_rebuild)

    def schedule_rebuild(self, *args) -> None:
        """Rebuild the surfaces soon."""
        self._dirty = True
        self._rebuild_timer.start()

    def rebuild(self) -> None:
        """Rebuild the surfaces now (no-op when nothing changed)."""
        self._rebuild_timer.stop()
        if not self._dirty or not self.isVisible():
            return  # a hidden view rebuilds when it is shown again
        self._dirty = False
        self.scene.set_labels(self.document.labels)
        self.render_now()

    def render_now(self) -> None:
        """Redraw now (not while hidden: a closing window's GL surface may already be gone)."""
        if not self.isVisible():
            return
        self.scene.renderer.ResetCameraClippingRange()
        self.GetRenderWindow().Render()

    def set_volume_rendering(self, on: bool) -> None:
        """Show or hide the CT volume rendering."""
        self.volume_rendering = bool(on)
        self.scene.set_volume_rendering(self.volume_rendering)
        self.render_now()

    def reset_camera(self) -> None:
        """Front view."""
        self.scene.reset_camera()
        self.render_now()

    def _on_document_image_loaded(self, volume) -> None:
        self.scene.set_image(volume)
        if self.volume_rendering:
            self.scene.set_volume_rendering(True)

    def _on_document_labels_replaced(self, labels) -> None:
        self.document.editor.changed.connect(self.schedule_rebuild)
        self.schedule_rebuild()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty:
            self._rebuild_timer.start()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.maximise_requested.emit(self.view)


def _orientation_marker(interactor) -> vtkOrientationMarkerWidget:
    """A small cube in the corner naming the patient's sides (LPS: +x left, +y posterior)."""
    cube = vtkAnnotatedCubeActor()
    for face, text in (("XPlus", "L"), ("XMinus", "R"), ("YPlus", "P"), ("YMinus", "A"),
                       ("ZPlus", "S"), ("ZMinus", "I")):  # fmt: skip
        getattr(cube, f"Set{face}FaceText")(text)
    cube.SetFaceTextScale(0.6)
    cube.GetCubeProperty().SetColor(0.25, 0.3, 0.38)
    cube.GetTextEdgesProperty().SetColor(0.8, 0.8, 0.8)
    for side in ("X", "Y", "Z"):
        getattr(cube, f"Get{side}PlusFaceProperty")().SetColor(0.95, 0.75, 0.35)
        getattr(cube, f"Get{side}MinusFaceProperty")().SetColor(0.95, 0.75, 0.35)
    widget = vtkOrientationMarkerWidget()
    widget.SetOrientationMarker(cube)
    widget.SetInteractor(interactor)
    widget.SetViewport(0.0, 0.0, 0.12, 0.17)
    widget.SetEnabled(1)
    widget.InteractiveOff()
    return widget
