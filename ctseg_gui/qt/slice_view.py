"""One slice view widget: a VTK render window that watches the viewer state and the document.

Mouse (default navigation tool): left click or drag moves the linked crosshair, middle drag (or
Shift + left drag) pans, right drag zooms, Ctrl + left drag adjusts window/level, wheel and
PageUp/PageDown (or the arrow keys) scroll slices, Ctrl + wheel zooms, double click maximises the
view. Another tool (ruler, ROI, click refinement) gets first say over mouse events via
:meth:`QtSliceView.set_tool`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vtkmodules.qt
from PySide6.QtCore import Qt, QTimer, Signal

vtkmodules.qt.PyQtImpl = "PySide6"
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402

from ctseg_gui.core.document import Document  # noqa: E402
from ctseg_gui.core.viewer_state import ViewerState  # noqa: E402
from ctseg_gui.render.overlay import OverlayTable  # noqa: E402
from ctseg_gui.render.slice_scene import SliceScene  # noqa: E402
from ctseg_gui.render.slicing import SliceGeometry, SliceImage, label_lut  # noqa: E402


@dataclass
class ViewEvent:
    """A mouse event translated into the view's coordinates, for tools."""

    view: QtSliceView
    x: float  # widget pixels, origin top left
    y: float
    u: float  # plane mm
    v: float
    world: np.ndarray  # LPS mm on the displayed slice
    button: Qt.MouseButton
    buttons: Qt.MouseButtons
    modifiers: Qt.KeyboardModifiers


class QtSliceView(QVTKRenderWindowInteractor):
    """Axial, coronal or sagittal view of the document's image and labels.

    Signals
    -------
    hovered(object)
        World LPS point under the mouse (``None`` when it leaves the view).
    maximise_requested(str)
        The user double-clicked this view.
    """

    hovered = Signal(object)
    maximise_requested = Signal(str)

    def __init__(self, view: str, state: ViewerState, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.view = view
        self.state = state
        self.document = document
        self.scene = SliceScene(view)
        self.scene.attach(self.GetRenderWindow())
        self.GetRenderWindow().SetMultiSamples(0)
        self._Iren.SetInteractorStyle(None)
        self.geometry: SliceGeometry | None = None
        self._slice_number: int | None = None
        self._image: SliceImage | None = None
        self._label_image: SliceImage | None = None
        self._lut = np.zeros((1, 4), np.uint8)
        self._overlay: OverlayTable | None = None
        self._drag: tuple[str, float, float, object] | None = None
        self._tool = None
        self._camera_key = None
        self.render_count = 0
        self._render_timer = QTimer(self, singleShot=True, interval=0)
        self._render_timer.timeout.connect(self.render_now)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMinimumSize(120, 120)

        state.cursor_changed.connect(self._on_state_cursor_changed)
        state.window_changed.connect(self._on_state_window_changed)
        state.labels_display_changed.connect(self._on_labels_display_changed)
        state.camera_changed.connect(self._on_state_camera_changed)
        state.interpolation_changed.connect(self._on_state_interpolation_changed)
        document.image_loaded.connect(self._on_document_image_loaded)
        document.labels_replaced.connect(self._on_document_labels_replaced)
        document.table_changed.connect(self._on_labels_display_changed)
        document.closed.connect(self._on_document_closed)
        self.scene.set_window(*state.window)
        self._update_text()

    # ---- public ------------------------------------------------------------------------------
    def set_tool(self, tool) -> None:
        """Route mouse events to ``tool`` first (``None``: plain navigation)."""
        self._tool = tool

    @property
    def slice_number(self) -> int | None:
        """0-based slice shown, ``None`` without an image or outside it."""
        return self._slice_number

    @property
    def slice_count(self) -> int:
        """Slices along this view's normal."""
        return self.geometry.count if self.geometry else 0

    def request_render(self) -> None:
        """Redraw soon (many state changes in one event cost one render)."""
        self._render_timer.start()

    def render_now(self) -> None:
        """Redraw now (not while hidden: a closing window's GL surface may already be gone)."""
        self._render_timer.stop()
        if not self.isVisible():
            return
        self._sync_camera()
        self.scene.compose()
        self.GetRenderWindow().Render()
        self.render_count += 1

    def scroll(self, steps: int) -> None:
        """Move the cursor ``steps`` slices along this view's normal."""
        if self.geometry is None:
            return
        u, v, w = self.geometry.to_plane(self.state.cursor)
        number = self.geometry.slice_number(w) + int(steps)
        self.state.cursor = self.geometry.to_world((u, v, self.geometry.slice_w(number)))

    def zoom_at(self, x: float, y: float, factor: float) -> None:
        """Zoom by ``factor`` keeping the point under widget pixel ``(x, y)`` where it is."""
        if self.geometry is None:
            return
        self._sync_camera()
        camera = self.state.camera(self.view)
        u, v = self.scene.display_to_plane(x, y)
        zoom = min(50.0, max(0.1, camera.zoom * factor))
        ratio = camera.zoom / zoom  # new mm per pixel / old mm per pixel
        center = self.scene.display_to_plane(self.width() / 2.0, self.height() / 2.0)
        # The new centre sits so that (u, v) stays under the mouse.
        shift = ((center[0] - u) * ratio + u - center[0], (center[1] - v) * ratio + v - center[1])
        pan = (camera.pan[0] + shift[0], camera.pan[1] + shift[1])
        self.state.set_camera(self.view, zoom=zoom, pan=pan)

    def event_at(self, x: float, y: float, event=None) -> ViewEvent | None:
        """The view coordinates of widget pixel ``(x, y)``; ``None`` without an image."""
        if self.geometry is None:
            return None
        u, v = self.scene.display_to_plane(x, y)
        w = self.geometry.to_plane(self.state.cursor)[2]
        world = self.geometry.to_world((u, v, w))
        none = Qt.MouseButton.NoButton
        return ViewEvent(
            self,
            x,
            y,
            u,
            v,
            world,
            event.button() if event is not None else none,
            event.buttons() if event is not None else Qt.MouseButton.NoButton,
            event.modifiers() if event is not None else Qt.KeyboardModifier.NoModifier,
        )

    def world_to_display(self, xyz) -> tuple[float, float]:
        """Widget pixel of a world point projected onto this view."""
        u, v, _ = self.geometry.to_plane(xyz)
        return self.scene.plane_to_display(u, v)

    def current_slice(self) -> SliceImage | None:
        """The CT slice on screen (HU), for measurements."""
        return self._image

    def current_labels(self) -> SliceImage | None:
        """The label slice on screen (``None`` without labels or outside the volume)."""
        return self._label_image

    # ---- document and state ------------------------------------------------------------------
    def _on_document_image_loaded(self, volume) -> None:
        self.geometry = SliceGeometry(volume, self.view)
        self._camera_key = None
        self._slice_number = None
        self._update_slice(force=True)
        self.request_render()

    def _on_document_labels_replaced(self, labels) -> None:
        self.document.editor.changed.connect(self._on_editor_changed)
        self._lut = label_lut(labels.table, self.state.labels_visible)
        self._update_labels()
        self.request_render()

    def _on_document_closed(self) -> None:
        self.geometry = None
        self._image = self._label_image = None
        self.scene.set_image(None)
        self.scene.set_labels(None)
        self._update_text()
        self.request_render()

    def _on_editor_changed(self, region) -> None:
        if self.document.labels is not None:
            self._lut = label_lut(self.document.labels.table, self.state.labels_visible)
        self._update_labels()
        self.request_render()

    def _on_labels_display_changed(self) -> None:
        if self.document.labels is not None:
            self._lut = label_lut(self.document.labels.table, self.state.labels_visible)
        self._update_labels()
        self.request_render()

    def _on_state_cursor_changed(self, xyz) -> None:
        self._update_slice()
        self.request_render()

    def _on_state_window_changed(self, width: float, level: float) -> None:
        self.scene.set_window(width, level)
        self._update_text()
        self.request_render()

    def _on_state_interpolation_changed(self, smooth: bool) -> None:
        self.scene.set_interpolation(smooth)
        self.request_render()

    def _on_state_camera_changed(self, view: str) -> None:
        if view == self.view:
            self.request_render()

    # ---- drawing -----------------------------------------------------------------------------
    def _update_slice(self, force: bool = False) -> None:
        if self.geometry is None or self.document.image is None:
            return
        u, v, w = self.geometry.to_plane(self.state.cursor)
        number = self.geometry.slice_number(w)
        if force or number != self._slice_number:
            self._slice_number = number
            self._image = self.geometry.extract(self.document.image.array, w, fill=-1024)
            self.scene.set_image(self._image)
            self._update_labels()
        self.scene.set_cursor(u, v)
        self._update_text()

    def _update_labels(self) -> None:
        labels = self.document.labels
        if self.geometry is None or labels is None or self._slice_number is None:
            self.scene.set_labels(None)
            return
        w = self.geometry.slice_w(self._slice_number)
        inside = 0 <= self._slice_number < self.geometry.count
        self._label_image = self.geometry.extract(labels.array, w, nearest=True) if inside else None
        if self._label_image is None or not self.state.labels_visible:
            self.scene.set_labels(None)
            return
        self.scene.set_labels(self._label_image.pixels, self._overlay_table())

    def _overlay_table(self) -> OverlayTable:
        # Built once per change of colours or display options, not per slice.
        state = self.state
        key = (self._lut.tobytes(), bool(state.fill), bool(state.outline), float(state.opacity))
        if self._overlay is None or self._overlay.key != key:
            self._overlay = OverlayTable(self._lut, state.fill, state.outline, state.opacity)
        return self._overlay

    def _update_text(self) -> None:
        title = self.view.capitalize()
        if self.geometry is not None and self._slice_number is not None:
            inside = 0 <= self._slice_number < self.geometry.count
            number = f"{self._slice_number + 1}" if inside else "-"
            title += f"\nSlice {number} / {self.geometry.count}"
        self.scene.set_corner_text("top_left", title)
        width, level = self.state.window
        preset = self.state.preset_name
        # Narrow views (the small ones of "1 + 3") keep only what a reader needs, so corner
        # texts never run into the orientation letters.
        wide = self.width() >= 460
        suffix = f"  ({preset})" if preset and wide else ""
        self.scene.set_corner_text("bottom_left", f"W {width:.0f}  L {level:.0f}{suffix}")
        zoom = self.state.camera(self.view).zoom
        show_zoom = wide or abs(zoom - 1.0) > 1e-3
        self.scene.set_corner_text("bottom_right", f"Zoom {zoom:.2f}x" if show_zoom else "")
        self.scene.set_corner_text("top_right", _describe(self.document) if wide else "")

    def _sync_camera(self) -> None:
        size = (self.width(), self.height())
        if self.geometry is None:
            self._camera_key = None
            self.scene.set_camera((0, 0), 100, size)
            return
        low, high = self.geometry.bounds
        step = self.geometry.step
        extent_u = high[0] - low[0] + step[0]
        extent_v = high[1] - low[1] + step[1]
        fit = max(extent_v / 2.0, extent_u / 2.0 * size[1] / max(1, size[0])) * 1.04
        camera = self.state.camera(self.view)
        center = ((low[0] + high[0]) / 2 + camera.pan[0], (low[1] + high[1]) / 2 + camera.pan[1])
        key = (center, fit / camera.zoom, size)
        if key == self._camera_key:
            return  # scrolling: nothing about the camera changed
        self._camera_key = key
        self.scene.set_camera(*key)
        u, v, _ = self.geometry.to_plane(self.state.cursor)
        self.scene.set_cursor(u, v)  # the crosshair gap depends on the zoom
        self._update_text()

    # ---- Qt events ---------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.setFocus()
        info = self.event_at(event.position().x(), event.position().y(), event)
        if info is None:
            return
        if self._tool is not None and self._tool.press(info):
            self._drag = ("tool", info.x, info.y, None)
            return
        button, mods = event.button(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.LeftButton and ctrl:
            self._drag = ("window", info.x, info.y, self.state.window)
        elif button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and shift
        ):
            self._drag = ("pan", info.x, info.y, self.state.camera(self.view).pan)
        elif button == Qt.MouseButton.RightButton:
            self._drag = ("zoom", info.x, info.y, self.state.camera(self.view).zoom)
        elif button == Qt.MouseButton.LeftButton:
            self._drag = ("cursor", info.x, info.y, None)
            self.state.cursor = info.world

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        info = self.event_at(event.position().x(), event.position().y(), event)
        if info is None:
            return
        self.hovered.emit(info.world)
        if self._drag is None:
            if self._tool is not None and hasattr(self._tool, "hover"):
                self._tool.hover(info)
            return
        kind, x0, y0, start = self._drag
        dx, dy = info.x - x0, info.y - y0
        if kind == "tool":
            self._tool.move(info)
        elif kind == "cursor":
            self.state.cursor = info.world
        elif kind == "window":
            width, level = start
            self.state.set_window(width * float(np.exp(dx / 200.0)), level - dy * width / 400.0)
        elif kind == "pan":
            s = self.scene.mm_per_pixel
            self.state.set_camera(self.view, pan=(start[0] - dx * s, start[1] + dy * s))
        elif kind == "zoom":
            self.state.set_camera(self.view, zoom=start * float(np.exp(-dy / 150.0)))

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drag is not None and self._drag[0] == "tool":
            info = self.event_at(event.position().x(), event.position().y(), event)
            if info is not None:
                self._tool.release(info)
        self._drag = None

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.maximise_requested.emit(self.view)

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if not steps:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_at(event.position().x(), event.position().y(), 1.15**steps)
        else:
            self.scroll(int(np.sign(steps) * max(1, round(abs(steps)))))

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_PageUp, Qt.Key.Key_Up):
            self.scroll(1)
        elif key in (Qt.Key.Key_PageDown, Qt.Key.Key_Down):
            self.scroll(-1)
        else:
            event.ignore()

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        event.ignore()

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.hovered.emit(None)

    def enterEvent(self, event) -> None:  # noqa: N802
        pass

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.request_render()


def _describe(document: Document) -> str:
    image = document.image
    if image is None:
        return ""
    meta = image.metadata
    if meta.get("format") == "DICOM":
        lines = [
            str(meta.get("patient_name") or "").replace("^", " "),
            " ".join([str(meta.get("patient_id") or ""), _date(meta.get("study_date"))]).strip(),
            str(meta.get("study_description") or ""),
            f"Se {meta.get('series_number') or '-'}: {meta.get('series_description') or ''}",
        ]
        return "\n".join(line for line in lines if line.strip())
    source = str(meta.get("source") or (document.path or ""))
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def _date(value) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text
