"""VTK pipeline of one slice view: CT slice, label overlay, crosshair, text and measurements.

The scene works in the view's plane coordinates (``u`` right, ``v`` up, mm; see
:mod:`ctseg_gui.render.slicing`) on the ``z = 0`` plane, seen by a parallel camera. Window/level
and the label overlay (fill, opaque borders, per-label visibility) are composed in numpy into one
slice (grey, or RGBA with labels; see :mod:`ctseg_gui.render.overlay`), drawn as a single opaque
textured quad.
"""

from __future__ import annotations

import numpy as np
from vtkmodules import vtkInteractionStyle, vtkRenderingFreeType, vtkRenderingOpenGL2  # noqa: F401
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkPlaneSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkCoordinate,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkTextActor,
    vtkTexture,
    vtkTexturedActor2D,
)

from ctseg_gui.render.overlay import OverlayTable
from ctseg_gui.render.slicing import EDGE_LETTERS, SliceImage

#: View colours (the widely used Slicer convention): title text and the crosshair line that
#: marks each view's plane in the other views.
VIEW_COLOURS = {
    "axial": (0.95, 0.40, 0.40),
    "coronal": (0.45, 0.85, 0.45),
    "sagittal": (0.95, 0.85, 0.35),
}
# In each view, the vertical and the horizontal crosshair line show these views' planes.
_CROSS_LINES = {
    "axial": ("sagittal", "coronal"),
    "coronal": ("sagittal", "axial"),
    "sagittal": ("coronal", "axial"),
}
TEXT_COLOUR = (0.92, 0.92, 0.88)
_FONT = 15


def grey_pixels(pixels: np.ndarray, width: float, level: float) -> np.ndarray:
    """Window/level to uint8 grey: ``level - width/2`` is 0, ``level + width/2`` is 255."""
    grey = pixels.astype(np.float32)
    grey -= level - width / 2.0
    grey *= 255.0 / width
    np.clip(grey, 0.0, 255.0, out=grey)
    grey += 0.5
    return grey.astype(np.uint8)


def _text(size: int = _FONT, colour=TEXT_COLOUR, bold: bool = False) -> vtkTextActor:
    actor = vtkTextActor()
    prop = actor.GetTextProperty()
    prop.SetFontSize(size)
    prop.SetColor(*colour)
    prop.SetShadow(True)
    prop.SetBold(bold)
    prop.SetFontFamilyToArial()
    return actor


class SliceScene:
    """Renderer and actors of one slice view (no Qt)."""

    def __init__(self, view: str) -> None:
        self.view = view
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        # Everything here is drawn back to front on one plane, so plain alpha blending is exact;
        # order-independent transparency would add full-screen passes (costly in software GL).
        self.renderer.UseOITOff()
        self.renderer.UseDepthPeelingOff()
        camera = self.renderer.GetActiveCamera()
        camera.ParallelProjectionOn()
        camera.SetPosition(0, 0, 1000)
        camera.SetFocalPoint(0, 0, 0)
        camera.SetViewUp(0, 1, 0)

        # CT and labels are composed into one texture in numpy: one opaque quad draws much
        # faster than a CT quad plus a blended label quad in software OpenGL, and window/level
        # in numpy costs about what VTK's own CPU colour mapping of int16 slices costs. The quad
        # is a 2D textured actor placed in world coordinates, alone in a background layer under
        # ``renderer`` (which holds everything drawn over it): in Mesa's llvmpipe its small
        # shader fills a 566 x 441 view about 0.7 ms faster than a 3D textured plane, and over
        # 2 ms faster than a vtkImageActor (measured side by side).
        self.image_renderer = vtkRenderer()
        self.image_renderer.SetLayer(0)
        self.image_renderer.SetBackground(0.0, 0.0, 0.0)
        self.image_renderer.SetActiveCamera(camera)
        self.image_renderer.InteractiveOff()
        self.image_renderer.UseOITOff()
        self.renderer.SetLayer(1)
        self._texture = vtkTexture()
        self._texture.RepeatOff()
        self._texture.EdgeClampOn()
        self._texture.InterpolateOn()
        self._plane = vtkPlaneSource()
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputConnection(self._plane.GetOutputPort())
        self._plane_coordinate = vtkCoordinate()
        self._plane_coordinate.SetCoordinateSystemToWorld()
        mapper.SetTransformCoordinate(self._plane_coordinate)
        mapper.TransformCoordinateUseDoubleOn()  # no rounding of the corners to whole pixels
        self.image_actor = vtkTexturedActor2D()
        self.image_actor.SetMapper(mapper)
        self.image_actor.SetTexture(self._texture)
        self.image_actor.VisibilityOff()
        self.image_renderer.AddViewProp(self.image_actor)
        self._ct: SliceImage | None = None
        self._labels: np.ndarray | None = None
        self._overlay: OverlayTable | None = None
        self._window = (400.0, 40.0)
        self._composed: np.ndarray | None = None
        self._data: vtkImageData | None = None
        self._data_shape = None
        self._dirty = False
        self.image_renderer.AddObserver("StartEvent", lambda *args: self.compose())

        self._cross = [self._line_actor(VIEW_COLOURS[other]) for other in _CROSS_LINES[view]]
        self.crosshair_visible = True
        self._cursor_key: tuple[float, float, float] | None = None

        self.letters = [_text(_FONT + 2, (0.95, 0.75, 0.35), bold=True) for _ in range(4)]
        for actor, letter in zip(self.letters, EDGE_LETTERS[view], strict=True):
            actor.SetInput(letter)
            self.renderer.AddViewProp(actor)
        self.corners = {}
        for corner in ("top_left", "top_right", "bottom_left", "bottom_right"):
            colour = VIEW_COLOURS[view] if corner == "top_left" else TEXT_COLOUR
            actor = _text(_FONT - 1, colour)
            self.renderer.AddViewProp(actor)
            self.corners[corner] = actor
        self._size = (1, 1)
        self._center = (0.0, 0.0)
        self._scale = 100.0

    def attach(self, window) -> None:
        """Add the scene's two layers (slice image, then everything over it) to a render window."""
        window.SetNumberOfLayers(max(2, window.GetNumberOfLayers()))
        window.AddRenderer(self.image_renderer)
        window.AddRenderer(self.renderer)

    # ---- content -----------------------------------------------------------------------------
    def set_image(self, image: SliceImage | None) -> None:
        """Show a CT slice (``None``: cursor outside the volume, show nothing)."""
        self._ct = image
        self._dirty = True

    def set_window(self, width: float, level: float) -> None:
        """Grey mapping: ``level - width/2`` is black, ``level + width/2`` white."""
        self._window = (float(width), float(level))
        self._dirty = True

    def set_interpolation(self, smooth: bool) -> None:
        """Linear (smooth) or nearest-voxel display."""
        self._texture.SetInterpolate(bool(smooth))

    def set_labels(self, pixels: np.ndarray | None, overlay: OverlayTable | None = None) -> None:
        """Overlay a label slice (same grid as the CT slice), coloured by ``overlay``.

        ``None`` (or an overlay that shows nothing) removes it.
        """
        if pixels is not None and (overlay is None or not overlay.any_shown or not pixels.any()):
            pixels = None
        self._labels = pixels
        self._overlay = overlay if pixels is not None else None
        self._dirty = True

    @property
    def has_overlay(self) -> bool:
        """Whether labels are drawn over the current slice."""
        return self._labels is not None

    def overlay_alpha(self) -> np.ndarray | None:
        """Alpha (0-255) the overlay draws each pixel of the slice with; ``None`` without one."""
        if self._labels is None:
            return None
        return self._overlay.alpha(self._labels)

    def compose(self) -> None:
        """Build the displayed slice if anything changed (runs before every render)."""
        if not self._dirty:
            return
        self._dirty = False
        if self._ct is None:
            self.image_actor.VisibilityOff()
            return
        grey = grey_pixels(self._ct.pixels, *self._window)
        labels = self._labels
        if labels is None or labels.shape != grey.shape:
            pixels = grey
        else:
            # Written into the last RGBA buffer when the shape allows: VTK already shares it.
            pixels = self._overlay.compose(grey, labels, out=self._composed)
        shape = (pixels.shape, self._ct.origin, self._ct.spacing)
        if shape != self._data_shape:
            self._data = vtkImageData()
            self._data.SetDimensions(pixels.shape[1], pixels.shape[0], 1)
            self._texture.SetInputData(self._data)
            self._set_plane(pixels.shape, self._ct.origin, self._ct.spacing)
            self._data_shape = shape
        elif pixels is self._composed:
            # Same buffer, new content: VTK re-reads it when it reloads the texture.
            self._data.GetPointData().GetScalars().Modified()
            self._data.Modified()
            self.image_actor.VisibilityOn()
            return
        components = 1 if pixels.ndim == 2 else pixels.shape[2]
        flat = pixels.reshape(-1, components) if components > 1 else pixels.reshape(-1)
        self._data.GetPointData().SetScalars(numpy_to_vtk(flat, deep=False))
        self._data.Modified()
        self._composed = pixels  # VTK shares this memory: keep it alive
        self.image_actor.VisibilityOn()

    def set_cursor(self, u: float, v: float) -> None:
        """Crosshair through ``(u, v)``, with a small gap so the voxel itself stays visible."""
        gap = 6 * self.mm_per_pixel
        if (u, v, gap) == self._cursor_key:
            return  # scrolling this view: its crosshair stays, so keep its line buffers
        self._cursor_key = (u, v, gap)
        far = 1e5
        vertical, horizontal = self._cross
        self._set_segments(vertical, [((u, -far), (u, v - gap)), ((u, v + gap), (u, far))])
        self._set_segments(horizontal, [((-far, v), (u - gap, v)), ((u + gap, v), (far, v))])

    def show_crosshair(self, visible: bool) -> None:
        """Show or hide the crosshair lines."""
        self.crosshair_visible = visible
        for actor in self._cross:
            actor.SetVisibility(visible)

    def set_corner_text(self, corner: str, text: str) -> None:
        """Text in one corner (``top_left``...), several lines allowed."""
        self.corners[corner].SetInput(text)

    # ---- measurement graphics ----------------------------------------------------------------
    def add_polyline(self, points, colour=(1.0, 0.85, 0.2), closed: bool = False) -> vtkActor:
        """A line through plane points ``[(u, v), ...]``; returns the actor to update or remove."""
        actor = self._line_actor(colour, z=2.0, width=2.0)
        self.update_polyline(actor, points, closed)
        return actor

    def update_polyline(self, actor: vtkActor, points, closed: bool = False) -> None:
        """Move an actor made by :meth:`add_polyline`."""
        points = [tuple(p) for p in points]
        if closed and points:
            points = [*points, points[0]]
        self._set_segments(actor, list(zip(points[:-1], points[1:], strict=True)), z=2.0)

    def add_label(self, text: str) -> vtkTextActor:
        """A measurement text placed with :meth:`place_label`."""
        actor = _text(_FONT - 1, (1.0, 0.9, 0.35))
        actor.GetTextProperty().SetBackgroundColor(0.0, 0.0, 0.0)
        actor.GetTextProperty().SetBackgroundOpacity(0.55)  # readable over bright bone
        actor.SetInput(text)
        self.renderer.AddViewProp(actor)
        return actor

    def place_label(self, actor: vtkTextActor, left: float, right: float, top: float) -> None:
        """Put a text beside a shape spanning ``left..right`` (u) with top ``top`` (v).

        The text goes right of the shape, or left of it (right-aligned) when it would run past
        the view's edge, so measurements are never clipped.
        """
        lines = (actor.GetInput() or "").split("\n")
        width = max(len(line) for line in lines) * 0.62 * (_FONT - 1)
        s = self.mm_per_pixel
        x_right = self.plane_to_display(right, top)[0]
        prop = actor.GetTextProperty()
        prop.SetVerticalJustificationToTop()
        coordinate = actor.GetPositionCoordinate()
        coordinate.SetCoordinateSystemToWorld()
        if x_right + 6 + width < self._size[0]:
            prop.SetJustificationToLeft()
            coordinate.SetValue(right + 6 * s, top, 3.0)
        else:
            prop.SetJustificationToRight()
            coordinate.SetValue(left - 6 * s, top, 3.0)

    def remove(self, actor) -> None:
        """Remove a measurement actor."""
        self.renderer.RemoveViewProp(actor)

    # ---- camera ------------------------------------------------------------------------------
    def set_camera(self, center, half_height_mm: float, size: tuple[int, int]) -> None:
        """Look at plane point ``center`` showing ``2 * half_height_mm`` vertically."""
        self._center = (float(center[0]), float(center[1]))
        self._scale = float(half_height_mm)
        self._size = (max(1, int(size[0])), max(1, int(size[1])))
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(self._center[0], self._center[1], 0.0)
        camera.SetPosition(self._center[0], self._center[1], 1000.0)
        camera.SetParallelScale(self._scale)
        camera.SetClippingRange(900.0, 1100.0)
        self._place_letters()

    @property
    def mm_per_pixel(self) -> float:
        """Plane millimetres per screen pixel (vertical and horizontal are equal)."""
        return 2.0 * self._scale / self._size[1]

    def display_to_plane(self, x: float, y: float) -> tuple[float, float]:
        """Plane ``(u, v)`` under widget pixel ``(x, y)`` (origin top left, y down)."""
        s = self.mm_per_pixel
        return (
            self._center[0] + (x - self._size[0] / 2.0) * s,
            self._center[1] - (y - self._size[1] / 2.0) * s,
        )

    def plane_to_display(self, u: float, v: float) -> tuple[float, float]:
        """Widget pixel ``(x, y)`` of plane point ``(u, v)``."""
        s = self.mm_per_pixel
        return (
            (u - self._center[0]) / s + self._size[0] / 2.0,
            self._size[1] / 2.0 - (v - self._center[1]) / s,
        )

    # ---- internals ---------------------------------------------------------------------------
    def _place_letters(self) -> None:
        w, h = self._size
        left, right, bottom, top = self.letters
        margin = 6
        left.SetDisplayPosition(margin, h // 2 - _FONT // 2)
        right.SetDisplayPosition(w - margin - _FONT, h // 2 - _FONT // 2)
        bottom.SetDisplayPosition(w // 2 - _FONT // 3, margin)
        top.SetDisplayPosition(w // 2 - _FONT // 3, h - margin - _FONT - 4)
        self.corners["top_left"].SetDisplayPosition(margin, h - margin)
        self.corners["top_left"].GetTextProperty().SetVerticalJustificationToTop()
        self.corners["top_right"].SetDisplayPosition(w - margin, h - margin)
        self.corners["top_right"].GetTextProperty().SetVerticalJustificationToTop()
        self.corners["top_right"].GetTextProperty().SetJustificationToRight()
        self.corners["bottom_left"].SetDisplayPosition(margin, margin)
        self.corners["bottom_right"].SetDisplayPosition(w - margin, margin)
        self.corners["bottom_right"].GetTextProperty().SetJustificationToRight()

    def _set_plane(self, shape, origin, spacing) -> None:
        # The quad reaches half a pixel past the outer pixel centres, so each texel centre sits
        # exactly on its voxel's plane position (texture coordinates run 0..1 edge to edge).
        rows, cols = shape[:2]
        su, sv = spacing
        u0, v0 = origin[0] - su / 2.0, origin[1] - sv / 2.0
        self._plane.SetOrigin(u0, v0, 0.0)
        self._plane.SetPoint1(u0 + cols * su, v0, 0.0)
        self._plane.SetPoint2(u0, v0 + rows * sv, 0.0)

    def _line_actor(self, colour, z: float = 1.0, width: float = 1.0) -> vtkActor:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(vtkPolyData())
        actor = vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.SetColor(*colour)
        prop.SetLineWidth(width)
        prop.LightingOff()
        self.renderer.AddActor(actor)
        actor._z = z  # type: ignore[attr-defined]
        return actor

    def _set_segments(self, actor: vtkActor, segments, z: float | None = None) -> None:
        z = actor._z if z is None else z  # type: ignore[attr-defined]
        points = vtkPoints()
        cells = vtkCellArray()
        for a, b in segments:
            first = points.InsertNextPoint(a[0], a[1], z)
            second = points.InsertNextPoint(b[0], b[1], z)
            cells.InsertNextCell(2)
            cells.InsertCellPoint(first)
            cells.InsertCellPoint(second)
        poly = vtkPolyData()
        poly.SetPoints(points)
        poly.SetLines(cells)
        actor.GetMapper().SetInputData(poly)
