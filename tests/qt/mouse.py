"""Mouse gestures on slice views at voxel positions, shared by the widget tests."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt


def voxel_pos(view, image, ijk) -> QPoint:
    """Widget position of voxel ``ijk`` (i, j, k) of ``image`` in ``view``."""
    x, y = view.world_to_display(image.index_to_world(ijk))
    return QPoint(round(x), round(y))


def stroke(qtbot, view, image, start, end, button=Qt.MouseButton.LeftButton, moves: int = 5):
    """Press at voxel ``start``, move in ``moves`` steps to ``end``, release."""
    qtbot.mousePress(view, button, pos=voxel_pos(view, image, start))
    for t in np.linspace(0, 1, moves + 1)[1:]:
        ijk = tuple(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
        qtbot.mouseMove(view, voxel_pos(view, image, ijk))
    qtbot.mouseRelease(view, button, pos=voxel_pos(view, image, end))
