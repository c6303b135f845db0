"""What the viewer shows, as an evented model that widgets watch (they do not own state).

The cursor is a point in LPS world millimetres, never a voxel index, so views of the same image
(or of a resampled twin) stay linked whatever their grids. Every setter emits only when the value
really changes, which lets views set state from their own events without feedback loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psygnal import Signal

#: Clinical window/level presets ``name -> (width, level)`` in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "Soft tissue": (400.0, 40.0),
    "Lung": (1500.0, -600.0),
    "Bone": (1800.0, 400.0),
    "Brain": (80.0, 40.0),
    "Liver": (150.0, 30.0),
    "Mediastinum": (350.0, 50.0),
}

VIEW_NAMES = ("axial", "coronal", "sagittal")
LAYOUTS = ("2x2", "1+3", "single")


@dataclass(frozen=True)
class Camera2D:
    """Zoom (screen pixels per mm, relative to fit = 1) and pan (mm in the view plane)."""

    zoom: float = 1.0
    pan: tuple[float, float] = (0.0, 0.0)


class ViewerState:
    """Cursor, window/level, label display, layout and per-view cameras.

    Signals
    -------
    cursor_changed(xyz)
        New cursor, LPS mm (tuple of 3 floats).
    window_changed(width, level)
        New display window in HU.
    labels_display_changed()
        Opacity, fill/outline or overall label visibility changed.
    active_label_changed(value)
        The structure edits and clicks apply to.
    layout_changed(layout, main_view)
        Arrangement of the views (``"2x2"``, ``"1+3"``, ``"single"``) and the large view.
    camera_changed(view)
        Zoom or pan of one slice view changed.
    interpolation_changed(bool)
        CT pixels are drawn smoothly (linear) or as the raw voxels (nearest).
    """

    cursor_changed = Signal(tuple)
    window_changed = Signal(float, float)
    labels_display_changed = Signal()
    active_label_changed = Signal(int)
    layout_changed = Signal(str, str)
    camera_changed = Signal(str)
    interpolation_changed = Signal(bool)

    def __init__(self) -> None:
        self._cursor: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._window: tuple[float, float] = WINDOW_PRESETS["Soft tissue"]
        self._opacity = 0.5
        self._fill = True
        self._outline = True
        self._labels_visible = True
        self._active_label = 1
        self._interpolate = True
        self._layout = "2x2"
        self._main_view = "axial"
        self._cameras: dict[str, Camera2D] = {name: Camera2D() for name in VIEW_NAMES}

    # ---- cursor ------------------------------------------------------------------------------
    @property
    def cursor(self) -> tuple[float, float, float]:
        """Linked crosshair position, LPS mm."""
        return self._cursor

    @cursor.setter
    def cursor(self, xyz) -> None:
        value = tuple(float(v) for v in np.asarray(xyz, dtype=float).reshape(3))
        if np.allclose(value, self._cursor, rtol=0, atol=1e-9):
            return
        self._cursor = value  # type: ignore[assignment]
        self.cursor_changed.emit(value)

    # ---- window / level ----------------------------------------------------------------------
    @property
    def window(self) -> tuple[float, float]:
        """``(width, level)`` in HU."""
        return self._window

    def set_window(self, width: float, level: float) -> None:
        """Set the display window; the width is kept at 1 HU or more."""
        value = (max(1.0, float(width)), float(level))
        if value != self._window:
            self._window = value
            self.window_changed.emit(*value)

    def apply_preset(self, name: str) -> None:
        """Set one of :data:`WINDOW_PRESETS` by name."""
        if name not in WINDOW_PRESETS:
            raise KeyError(f"unknown window preset {name!r}; known: {', '.join(WINDOW_PRESETS)}")
        self.set_window(*WINDOW_PRESETS[name])

    @property
    def preset_name(self) -> str:
        """Name of the preset matching the current window, ``""`` for a custom one."""
        for name, value in WINDOW_PRESETS.items():
            if value == self._window:
                return name
        return ""

    # ---- label display -----------------------------------------------------------------------
    @property
    def opacity(self) -> float:
        """Label overlay opacity, 0 to 1."""
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        value = float(min(1.0, max(0.0, value)))
        if value != self._opacity:
            self._opacity = value
            self.labels_display_changed.emit()

    @property
    def fill(self) -> bool:
        """Whether label regions are filled."""
        return self._fill

    @fill.setter
    def fill(self, value: bool) -> None:
        if bool(value) != self._fill:
            self._fill = bool(value)
            self.labels_display_changed.emit()

    @property
    def outline(self) -> bool:
        """Whether label borders are drawn (opaque, so thin structures stay visible)."""
        return self._outline

    @outline.setter
    def outline(self, value: bool) -> None:
        if bool(value) != self._outline:
            self._outline = bool(value)
            self.labels_display_changed.emit()

    @property
    def labels_visible(self) -> bool:
        """Master switch of the label overlay."""
        return self._labels_visible

    @labels_visible.setter
    def labels_visible(self, value: bool) -> None:
        if bool(value) != self._labels_visible:
            self._labels_visible = bool(value)
            self.labels_display_changed.emit()

    @property
    def active_label(self) -> int:
        """Label value that edits and clicks write."""
        return self._active_label

    @active_label.setter
    def active_label(self, value: int) -> None:
        if int(value) != self._active_label:
            self._active_label = int(value)
            self.active_label_changed.emit(self._active_label)

    @property
    def interpolate(self) -> bool:
        """Draw the CT with linear interpolation (smooth) instead of raw voxel blocks."""
        return self._interpolate

    @interpolate.setter
    def interpolate(self, value: bool) -> None:
        if bool(value) != self._interpolate:
            self._interpolate = bool(value)
            self.interpolation_changed.emit(self._interpolate)

    # ---- layout ------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        """``"2x2"``, ``"1+3"`` or ``"single"``."""
        return self._layout

    @property
    def main_view(self) -> str:
        """The large view in ``"1+3"`` and the only one in ``"single"``."""
        return self._main_view

    def set_layout(self, layout: str, main_view: str | None = None) -> None:
        """Change the arrangement; ``main_view`` is a slice view name or ``"3d"``."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        main = main_view or self._main_view
        if (layout, main) != (self._layout, self._main_view):
            self._layout, self._main_view = layout, main
            self.layout_changed.emit(layout, main)

    # ---- cameras -----------------------------------------------------------------------------
    def camera(self, view: str) -> Camera2D:
        """Zoom and pan of a slice view."""
        return self._cameras[view]

    def set_camera(self, view: str, zoom: float | None = None, pan=None) -> None:
        """Change zoom (clamped to 0.1-50) and/or pan of one view."""
        old = self._cameras[view]
        new = Camera2D(
            old.zoom if zoom is None else float(min(50.0, max(0.1, zoom))),
            old.pan if pan is None else (float(pan[0]), float(pan[1])),
        )
        if new != old:
            self._cameras[view] = new
            self.camera_changed.emit(view)

    def reset_cameras(self) -> None:
        """Fit every view to its image again."""
        for view in VIEW_NAMES:
            self.set_camera(view, 1.0, (0.0, 0.0))

    # ---- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict:
        """Everything above as plain JSON values (session files, autosave)."""
        return {
            "cursor": list(self._cursor),
            "window": list(self._window),
            "opacity": self._opacity,
            "fill": self._fill,
            "outline": self._outline,
            "labels_visible": self._labels_visible,
            "active_label": self._active_label,
            "interpolate": self._interpolate,
            "layout": self._layout,
            "main_view": self._main_view,
            "cameras": {
                name: {"zoom": cam.zoom, "pan": list(cam.pan)}
                for name, cam in self._cameras.items()
            },
        }

    def apply_json(self, data: dict) -> None:
        """Set what :meth:`to_json` wrote; missing keys keep their value (older files).

        Raises
        ------
        ValueError
            A value of the wrong type or out of its domain (an unknown layout, a cursor that is
            not three numbers); nothing is changed then.
        """
        if not isinstance(data, dict):
            raise ValueError("view state is not a JSON object")
        try:
            cursor = data.get("cursor", self._cursor)
            cursor = tuple(float(v) for v in np.asarray(cursor, dtype=float).reshape(3))
            width, level = (float(v) for v in data.get("window", self._window))
            layout = str(data.get("layout", self._layout))
            main = str(data.get("main_view", self._main_view))
            cameras = {}
            for name, cam in dict(data.get("cameras", {})).items():
                if name in VIEW_NAMES:
                    pan = tuple(float(v) for v in cam.get("pan", (0.0, 0.0)))
                    cameras[name] = (float(cam.get("zoom", 1.0)), pan[:2])
            flags = {
                key: bool(data.get(key, getattr(self, key)))
                for key in ("fill", "outline", "labels_visible", "interpolate")
            }
            opacity = float(data.get("opacity", self._opacity))
            active = int(data.get("active_label", self._active_label))
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"bad view state: {error}") from error
        if layout not in LAYOUTS or main not in (*VIEW_NAMES, "3d"):
            raise ValueError(f"bad view state: unknown layout {layout!r} / view {main!r}")
        if not all(np.isfinite(cursor)):
            raise ValueError("bad view state: the cursor is not finite")
        self.cursor = cursor
        self.set_window(width, level)
        self.opacity = opacity
        for key, value in flags.items():
            setattr(self, key, value)
        self.active_label = active
        self.set_layout(layout, main)
        for name, (zoom, pan) in cameras.items():
            self.set_camera(name, zoom, pan)
