"""VTK pipeline of the 3D view: smooth label surfaces and optional CT volume rendering.

Surfaces come from ``vtkSurfaceNets3D`` (one pass for all labels, with built-in smoothing), built
on the voxel grid scaled by spacing; an actor matrix carries the image's direction and origin, so
oblique, LPS and RAS images land in LPS world space like the slice views. The camera looks from
the patient's front (anterior), so the patient's left is on screen right, as in the coronal view.
"""

from __future__ import annotations

import numpy as np
from vtkmodules import (  # noqa: F401  (register the OpenGL and FreeType factories)
    vtkInteractionStyle,
    vtkRenderingFreeType,
    vtkRenderingOpenGL2,
    vtkRenderingVolumeOpenGL2,
)
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPiecewiseFunction
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D
from vtkmodules.vtkFiltersSources import vtkOutlineSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkColorTransferFunction,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTextActor,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from ctseg_gui.core.labels import LabelMap
from ctseg_gui.core.volume import Volume

# Above this many voxels the surfaces are built on every second voxel: a 512 x 512 x 400 map
# would take seconds at full resolution, and the 3D view is an overview, not the measurement.
_FULL_RES_VOXELS = 24_000_000


def _grid(array: np.ndarray, spacing) -> vtkImageData:
    data = vtkImageData()
    k, j, i = array.shape
    data.SetDimensions(i, j, k)
    data.SetSpacing(*spacing)
    data.SetOrigin(0.0, 0.0, 0.0)
    data.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(array).reshape(-1), deep=1))
    return data


def _matrix(volume: Volume) -> vtkMatrix4x4:
    matrix = vtkMatrix4x4()
    affine = np.eye(4)
    affine[:3, :3] = volume.direction
    affine[:3, 3] = volume.origin
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, affine[r, c])
    return matrix


class Scene3D:
    """Renderer of the 3D view (no Qt)."""

    def __init__(self) -> None:
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.06, 0.07, 0.09)
        self.renderer.SetBackground2(0.16, 0.18, 0.22)
        self.renderer.GradientBackgroundOn()
        self._outline = vtkActor()
        self._outline.SetMapper(vtkPolyDataMapper())
        self._outline.GetProperty().SetColor(0.5, 0.55, 0.6)
        self._outline.VisibilityOff()
        self.renderer.AddActor(self._outline)
        self.surface_actor = vtkActor()
        self.surface_actor.SetMapper(vtkPolyDataMapper())
        self.surface_actor.VisibilityOff()
        prop = self.surface_actor.GetProperty()
        prop.SetSpecular(0.25)
        prop.SetSpecularPower(20)
        self.renderer.AddActor(self.surface_actor)
        self.title = vtkTextActor()
        self.title.SetInput("3D")
        prop = self.title.GetTextProperty()
        prop.SetFontSize(14)
        prop.SetColor(0.85, 0.85, 0.8)
        prop.SetShadow(True)
        prop.SetVerticalJustificationToTop()
        self.title.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self.title.GetPositionCoordinate().SetValue(0.01, 0.985)
        self.renderer.AddViewProp(self.title)
        self._volume_actor: vtkVolume | None = None
        self._image: Volume | None = None
        self.surface_cells = 0

    def set_image(self, volume: Volume) -> None:
        """Frame the new image (outline box) and look at it from the front."""
        self._image = volume
        extent = (np.asarray(volume.size) - 1) * np.asarray(volume.spacing)
        source = vtkOutlineSource()
        source.SetBounds(0, extent[0], 0, extent[1], 0, extent[2])
        self._outline.GetMapper().SetInputConnection(source.GetOutputPort())
        self._outline.SetUserMatrix(_matrix(volume))
        self._outline.VisibilityOn()
        self.surface_actor.VisibilityOff()
        if self._volume_actor is not None:
            self.renderer.RemoveVolume(self._volume_actor)
            self._volume_actor = None
        self.reset_camera()

    def reset_camera(self) -> None:
        """Anterior view, head up (patient's left on screen right)."""
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(0, 0, 0)
        camera.SetPosition(0, -1, 0)  # LPS: -y is anterior
        camera.SetViewUp(0, 0, 1)
        self.renderer.ResetCamera()
        camera.Zoom(1.3)

    def set_labels(self, labels: LabelMap | None) -> None:
        """Rebuild the surfaces of the visible structures now (``None`` clears them)."""
        self.set_surface(build_surfaces(surface_input(labels)) if labels is not None else None)

    def set_surface(self, poly) -> None:
        """Show surfaces made by :func:`build_surfaces` (``None`` hides them)."""
        self.surface_cells = poly.GetNumberOfCells() if poly is not None else 0
        if not self.surface_cells or self._image is None:
            self.surface_actor.VisibilityOff()
            return
        mapper = self.surface_actor.GetMapper()
        mapper.SetInputData(poly)
        mapper.SetColorModeToDirectScalars()
        mapper.SetScalarModeToUseCellData()
        mapper.ScalarVisibilityOn()
        self.surface_actor.SetUserMatrix(_matrix(self._image))
        self.surface_actor.VisibilityOn()

    def set_volume_rendering(self, on: bool) -> None:
        """Show the CT as a volume rendering (soft tissue translucent, bone opaque)."""
        if self._image is None:
            return
        if not on:
            if self._volume_actor is not None:
                self._volume_actor.VisibilityOff()
            return
        if self._volume_actor is None:
            array = self._image.array
            spacing = self._image.spacing
            if array.size > _FULL_RES_VOXELS:
                array, spacing = array[::2, ::2, ::2], tuple(2 * s for s in spacing)
            mapper = vtkSmartVolumeMapper()
            mapper.SetInputData(_grid(array.astype(np.float32, copy=False), spacing))
            colour = vtkColorTransferFunction()
            colour.AddRGBPoint(-1000, 0, 0, 0)
            colour.AddRGBPoint(-100, 0.55, 0.35, 0.25)
            colour.AddRGBPoint(60, 0.85, 0.45, 0.4)
            colour.AddRGBPoint(300, 1.0, 0.95, 0.85)
            colour.AddRGBPoint(1500, 1.0, 1.0, 1.0)
            opacity = vtkPiecewiseFunction()
            opacity.AddPoint(-200, 0.0)
            opacity.AddPoint(40, 0.02)
            opacity.AddPoint(200, 0.08)
            opacity.AddPoint(600, 0.6)
            opacity.AddPoint(1500, 0.8)
            prop = vtkVolumeProperty()
            prop.SetColor(colour)
            prop.SetScalarOpacity(opacity)
            prop.ShadeOn()
            prop.SetInterpolationTypeToLinear()
            self._volume_actor = vtkVolume()
            self._volume_actor.SetMapper(mapper)
            self._volume_actor.SetProperty(prop)
            self._volume_actor.SetUserMatrix(_matrix(self._image))
            self.renderer.AddVolume(self._volume_actor)
        self._volume_actor.VisibilityOn()


def surface_input(labels: LabelMap) -> tuple[np.ndarray, tuple, dict[int, tuple]]:
    """A private copy of what :func:`build_surfaces` needs (safe to hand to another thread).

    Maps above ``_FULL_RES_VOXELS`` are taken at every second voxel.
    """
    array, spacing = labels.array, tuple(labels.image.spacing)
    if array.size > _FULL_RES_VOXELS:
        array, spacing = array[::2, ::2, ::2], tuple(2 * s for s in spacing)
    colours = {e.value: tuple(e.color) for e in labels.table if e.visible}
    return np.array(array, copy=True), spacing, colours


def build_surfaces(data: tuple[np.ndarray, tuple, dict[int, tuple]]):
    """Smooth surfaces of the visible labels, coloured per cell; ``None`` when there are none.

    Touches no renderer, so it may run in a worker thread; the GUI thread shows the result.
    """
    array, spacing, colours = data
    present = set(np.flatnonzero(np.bincount(array.ravel().astype(np.int64))).tolist())
    values = [v for v in colours if v in present]
    if not values:
        return None
    nets = vtkSurfaceNets3D()
    nets.SetInputData(_grid(array, spacing))
    for index, value in enumerate(values):
        nets.SetValue(index, value)
    nets.SetBackgroundLabel(0)
    nets.SetOutputMeshTypeToTriangles()
    nets.SmoothingOn()
    nets.SetNumberOfIterations(16)
    nets.Update()
    poly = nets.GetOutput()
    if not poly.GetNumberOfCells():
        return None
    pairs = vtk_to_numpy(poly.GetCellData().GetArray("BoundaryLabels")).astype(np.int64)
    pairs = pairs.reshape(-1, 2)
    # A face between a structure and background carries the structure's label either side.
    label = np.where(pairs[:, 0] > 0, pairs[:, 0], pairs[:, 1])
    lut = np.zeros((int(max(label.max(), max(values))) + 1, 3), np.uint8)
    for value, colour in colours.items():
        if value < len(lut):
            lut[value] = colour
    scalars = numpy_to_vtk(lut[label], deep=1)
    scalars.SetName("colours")
    poly.GetCellData().SetScalars(scalars)
    return poly
