"""Mouse tools for slice views: window/level drag, distance ruler, HU statistics of an ROI.

A tool receives :class:`~ctseg_gui.qt.slice_view.ViewEvent` objects through ``press`` (return
``True`` to take the drag), ``move`` and ``release``; the click-refinement tools follow the same
protocol. Measurements live on the slice where they were drawn and hide on other slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import Qt

from ctseg_gui.core.viewer_state import ViewerState


@dataclass
class RoiStats:
    """HU statistics of the voxels whose centres lie inside an ROI on one slice."""

    mean: float
    std: float
    minimum: float
    maximum: float
    area_mm2: float
    count: int

    def text(self) -> str:
        """Two short lines for the view."""
        area = (
            f"{self.area_mm2 / 100:.2f} cm²" if self.area_mm2 >= 100 else f"{self.area_mm2:.1f} mm²"
        )
        return (
            f"mean {self.mean:.1f} HU  sd {self.std:.1f}\n"
            f"min {self.minimum:.0f}  max {self.maximum:.0f}  area {area}"
        )


def roi_stats(image, shape: str, start, end) -> RoiStats | None:
    """Statistics of a ``"rect"`` (corners) or ``"circle"`` (centre, rim point) on a slice."""
    if image is None:
        return None
    rows, cols = image.pixels.shape
    u = image.origin[0] + image.spacing[0] * np.arange(cols)
    v = image.origin[1] + image.spacing[1] * np.arange(rows)
    uu, vv = np.meshgrid(u, v)
    if shape == "rect":
        inside = (
            (uu >= min(start[0], end[0]))
            & (uu <= max(start[0], end[0]))
            & (vv >= min(start[1], end[1]))
            & (vv <= max(start[1], end[1]))
        )
    else:
        radius = float(np.hypot(end[0] - start[0], end[1] - start[1]))
        inside = (uu - start[0]) ** 2 + (vv - start[1]) ** 2 <= radius**2
    values = image.pixels[inside].astype(float)
    if not values.size:
        return None
    return RoiStats(
        float(values.mean()),
        float(values.std()),
        float(values.min()),
        float(values.max()),
        float(values.size * image.spacing[0] * image.spacing[1]),
        int(values.size),
    )


def _outline(shape: str, start, end) -> list[tuple[float, float]]:
    if shape == "rect":
        return [(start[0], start[1]), (end[0], start[1]), (end[0], end[1]), (start[0], end[1])]
    radius = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    angles = np.linspace(0, 2 * np.pi, 65)[:-1]
    return [(start[0] + radius * np.cos(a), start[1] + radius * np.sin(a)) for a in angles]


class WindowLevelTool:
    """Left drag: horizontal changes the width, vertical the level."""

    def __init__(self, state: ViewerState) -> None:
        self.state = state
        self._start = None

    def press(self, event) -> bool:
        if event.button != Qt.MouseButton.LeftButton:
            return False
        self._start = (event.x, event.y, self.state.window)
        return True

    def move(self, event) -> None:
        x0, y0, (width, level) = self._start
        dx, dy = event.x - x0, event.y - y0
        self.state.set_window(width * float(np.exp(dx / 200.0)), level - dy * width / 400.0)

    def release(self, event) -> None:
        self._start = None


@dataclass
class Measurement:
    """A ruler or ROI drawn on one slice of one view."""

    view: object
    slice_number: int
    kind: str
    start: tuple[float, float]
    end: tuple[float, float]
    actors: list = field(default_factory=list)
    text: str = ""
    stats: RoiStats | None = None


class MeasureTool:
    """Draws rulers (``"ruler"``) or ROIs (``"rect"``, ``"circle"``) with the left button."""

    def __init__(self, kind: str, store: list[Measurement]) -> None:
        self.kind = kind
        self.store = store
        self._current: Measurement | None = None

    def press(self, event) -> bool:
        if event.button != Qt.MouseButton.LeftButton or event.view.slice_number is None:
            return False
        scene = event.view.scene
        point = (event.u, event.v)
        item = Measurement(event.view, event.view.slice_number, self.kind, point, point)
        item.actors = [scene.add_polyline([point, point]), scene.add_label("")]
        self._current = item
        self.store.append(item)
        return True

    def move(self, event) -> None:
        if self._current is None:
            return
        self._current.end = (event.u, event.v)
        self._update(self._current)
        event.view.request_render()

    def release(self, event) -> None:
        self.move(event)
        self._current = None

    def _update(self, item: Measurement) -> None:
        draw_measurement(item)


def draw_measurement(item: Measurement, text: str | None = None) -> None:
    """Update the line and text of ``item`` from its end points.

    ROI statistics come from the slice its view shows, so they are recomputed only when that is
    the ROI's own slice; otherwise ``text`` (the statistics saved with a session) is shown.
    """
    scene = item.view.scene
    line, label = item.actors
    if item.kind == "ruler":
        scene.update_polyline(line, [item.start, item.end])
        length = float(np.hypot(item.end[0] - item.start[0], item.end[1] - item.start[1]))
        item.text = f"{length:.1f} mm"
        us, vs = (item.start[0], item.end[0]), (item.start[1], item.end[1])
    else:
        outline = _outline(item.kind, item.start, item.end)
        scene.update_polyline(line, outline, closed=True)
        if text is None or item.view.slice_number == item.slice_number:
            item.stats = roi_stats(item.view.current_slice(), item.kind, item.start, item.end)
            item.text = item.stats.text() if item.stats else ""
        else:
            item.text = text
        us, vs = [p[0] for p in outline], [p[1] for p in outline]
    label.SetInput(item.text)
    scene.place_label(label, min(us), max(us), max(vs))


def restore_measurement(
    view, slice_number: int, kind: str, start, end, store: list[Measurement], text: str = ""
) -> Measurement:
    """Draw a saved ruler or ROI again in ``view`` and add it to ``store``."""
    start, end = (float(start[0]), float(start[1])), (float(end[0]), float(end[1]))
    item = Measurement(view, int(slice_number), kind, start, end)
    item.actors = [view.scene.add_polyline([start, end]), view.scene.add_label("")]
    draw_measurement(item, text)
    store.append(item)
    visible = view.slice_number == item.slice_number
    for actor in item.actors:
        actor.SetVisibility(visible)
    view.request_render()
    return item


def show_measurements_on_slice(store: list[Measurement]) -> None:
    """Hide measurements whose view now shows another slice."""
    for item in store:
        visible = item.view.slice_number == item.slice_number
        for actor in item.actors:
            actor.SetVisibility(visible)


def clear_measurements(store: list[Measurement]) -> None:
    """Remove every ruler and ROI."""
    views = set()
    for item in store:
        for actor in item.actors:
            item.view.scene.remove(actor)
        views.add(item.view)
    store.clear()
    for view in views:
        view.request_render()
