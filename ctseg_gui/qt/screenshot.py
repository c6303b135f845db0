"""Whole-window screenshots that include what VTK drew.

``QWidget.grab()`` paints Qt widgets but leaves OpenGL windows black or stale, so each VTK view is
read back with ``vtkWindowToImageFilter`` and painted over its place in the Qt grab.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QWidget


def vtk_view_image(widget) -> np.ndarray:
    """RGB pixels ``[row, col, 3]`` (row 0 at the top) of a VTK widget, freshly rendered."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    window = widget.GetRenderWindow()
    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return np.ascontiguousarray(pixels[::-1, :, :3])


def grab_window(window: QWidget) -> QImage:
    """The whole window as an image, VTK views included."""
    from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

    picture = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    painter = QPainter(picture)
    for widget in window.findChildren(QVTKRenderWindowInteractor):
        if not widget.isVisible() or widget.width() < 2:
            continue
        pixels = vtk_view_image(widget)
        height, width, _ = pixels.shape
        image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
        corner = widget.mapTo(window, QPoint(0, 0))
        painter.drawImage(QRect(corner.x(), corner.y(), widget.width(), widget.height()), image)
    painter.end()
    return picture
