"""The 3D view widget: label surfaces (rebuilt a moment after edits) and optional CT rendering."""

from __future__ import annotations

import vtkmodules.qt
from PySide6.QtCore import QTimer, Signal

vtkmodules.qt.PyQtImpl = "PySide6"
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkRenderer  # noqa: E402

from ctseg_gui.core.document import Document  # noqa: E402
from ctseg_gui.qt.jobs import QtJobs  # noqa: E402
from ctseg_gui.render.scene3d import Scene3D, build_surfaces, surface_input  # noqa: E402

# Label maps up to this many voxels (after subsampling) get their surfaces on the GUI thread
# (tens of milliseconds); bigger ones as a background job.
_SYNC_VOXELS = 4_000_000


class QtView3D(QVTKRenderWindowInteractor):
    """Rotate with the left button, pan with the middle, zoom with the right button or wheel.

    Signals
    -------
    maximise_requested(str)
        Double click (``"3d"``).
    surfaces_built()
        Surfaces built in the background are on screen.
    """

    maximise_requested = Signal(str)
    surfaces_built = Signal()

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.view = "3d"
        self.document = document
        self.scene = Scene3D()
        self.GetRenderWindow().AddRenderer(self.scene.renderer)
        self._Iren.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self._marker = _orientation_marker(self.scene.renderer)
        self.GetRenderWindow().SetNumberOfLayers(2)
        self.GetRenderWindow().AddRenderer(self._marker)
        self.volume_rendering = False
        self._dirty = False
        self._jobs = QtJobs(self)
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

    def rebuild(self, background: bool = True) -> None:
        """Rebuild the surfaces (no-op when nothing changed).

        Big maps build in a worker thread unless ``background`` is false (screenshots).
        """
        self._rebuild_timer.stop()
        if not self._dirty or not self.isVisible():
            return  # a hidden view rebuilds when it is shown again
        self._dirty = False
        labels = self.document.labels
        if labels is None:
            self.scene.set_surface(None)
            self.render_now()
            return
        data = surface_input(labels)
        self._jobs.drop("surfaces")  # whatever is still building is stale now
        if data[0].size <= _SYNC_VOXELS or not background:
            self.scene.set_surface(build_surfaces(data))
            self.render_now()
            return
        # Big maps take a second or more: build in a thread so the window never freezes; a
        # newer request makes this one stale and its result is dropped.
        # The job's thread touches no renderer: it only builds the polydata.
        self._jobs.run("surfaces", lambda _job: build_surfaces(data), on_result=self._on_built)

    def _on_built(self, poly) -> None:
        self.scene.set_surface(poly)
        self.render_now()
        self.surfaces_built.emit()

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


def _orientation_marker(main: vtkRenderer) -> vtkRenderer:
    """A small cube in the corner naming the patient's sides (LPS: +x left, +y posterior).

    Drawn by an overlay renderer whose camera follows the main camera's direction before each
    render. (vtkOrientationMarkerWidget does the same but pulls in vtkInteractionWidgets and its
    dependencies, about 26 MB of the installed app.)
    """
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
    overlay = vtkRenderer()
    overlay.SetViewport(0.0, 0.0, 0.12, 0.17)
    overlay.SetLayer(1)
    overlay.InteractiveOff()
    overlay.AddViewProp(cube)
    marker_camera = overlay.GetActiveCamera()

    def follow(*_) -> None:
        camera = main.GetActiveCamera()
        direction = [
            p - f for p, f in zip(camera.GetPosition(), camera.GetFocalPoint(), strict=True)
        ]
        length = sum(d * d for d in direction) ** 0.5 or 1.0
        marker_camera.SetFocalPoint(0.0, 0.0, 0.0)
        marker_camera.SetPosition(*(5.0 * d / length for d in direction))
        marker_camera.SetViewUp(camera.GetViewUp())
        overlay.ResetCameraClippingRange()

    main.AddObserver("StartEvent", follow)
    follow()
    return overlay
