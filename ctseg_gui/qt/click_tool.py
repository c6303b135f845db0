"""Click refinement tool for the slice views: left click adds, right (or Shift + left) removes.

The tool follows the slice-view tool protocol (``press`` / ``move`` / ``release``). A click is
turned into a voxel of the open image through the view's world (LPS) coordinates, drawn as a green
or red ring in every slice view showing its slice, and sent to the refiner (the model-free
:class:`~ctseg_gui.interactive.geodesic.GeodesicRefiner` by default, a Deepgrow/DeepEdit model
through the compute worker with :class:`WorkerRefiner`) as a job on a background thread, so the
GUI never waits. A click made while an update runs supersedes it (the job's ``click`` channel in
:class:`~ctseg_gui.qt.jobs.QtJobs`): the running result is dropped when it arrives and one new update applies every click not yet applied, so no queue of stale work builds
up. Each applied update is one undo step (Ctrl+Z / Ctrl+Shift+Z in the main window).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal

from ctseg_gui.core.history import changed_region
from ctseg_gui.interactive.clicks import Click, ClickSession
from ctseg_gui.qt.jobs import QtJobs

POSITIVE_COLOUR = (0.15, 0.9, 0.25)
NEGATIVE_COLOUR = (0.95, 0.2, 0.2)


class WorkerRefiner:
    """A Deepgrow/DeepEdit bundle run in the compute worker (the network stays warm there)."""

    incremental = False  # the network sees every click at once

    def __init__(self, client, image, bundle: str, device: str = "auto") -> None:
        self.client, self.image, self.bundle, self.device = client, image, bundle, device

    def refine(self, mask, clicks):
        job = self.client.submit_clicks(self.image, mask, clicks, self.bundle, device=self.device)
        job.wait()
        if job.error or job.result is None:
            raise RuntimeError(job.error or f"click job {job.state}")
        return job.result


class QtClickTool(QObject):
    """Positive / negative clicks on the active structure of the document.

    Parameters
    ----------
    document
        The open image and its label editor.
    state
        Viewer state (the active structure).
    views
        Callable returning the slice views to draw markers in.
    refiner_factory
        ``factory(image) -> Refiner``; default: the model-free geodesic refiner.

    Signals
    -------
    updated(object)
        An update was applied (its region, ``None`` when nothing changed).
    busy_changed(bool)
        An update started or the last one finished.
    failed(str)
        An update raised; the labels are unchanged.
    """

    updated = Signal(object)
    busy_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, document, state, views: Callable[[], list], refiner_factory=None) -> None:
        super().__init__()
        self.document = document
        self.state = state
        self.views = views
        self.refiner_factory = refiner_factory
        self.clicks: list[Click] = []
        self._markers: list[tuple[Click, np.ndarray, list]] = []
        self._applied = 0
        self._jobs = QtJobs(self)
        self._running = False
        self._edits = 0  # label edits made by anyone else while an update runs
        self._refiner = None
        self._refiner_image = None
        self._editor = None
        state.active_label_changed.connect(lambda _value: self.clear_clicks())
        state.cursor_changed.connect(lambda _xyz: self._show_markers_on_slice())
        document.labels_replaced.connect(lambda _labels: self.clear_clicks())
        document.closed.connect(self.clear_clicks)

    # ---- tool protocol -----------------------------------------------------------------------
    def press(self, event) -> bool:
        """Left: positive; right or Shift + left: negative. Other buttons navigate as usual."""
        image = self.document.image
        if image is None or self.document.editor is None:
            return False
        shift = bool(event.modifiers & Qt.KeyboardModifier.ShiftModifier)
        if event.button == Qt.MouseButton.RightButton or (
            event.button == Qt.MouseButton.LeftButton and shift
        ):
            positive = False
        elif event.button == Qt.MouseButton.LeftButton:
            positive = True
        else:
            return False
        try:
            click = Click.from_world(image, event.world, positive)
        except ValueError:
            return True  # outside the image: nothing to do, but do not move the crosshair
        self.add_click(click)
        return True

    def move(self, event) -> None:
        pass

    def release(self, event) -> None:
        pass

    # ---- public ------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether an update is running."""
        return self._running

    def add_click(self, click: Click) -> None:
        """Record a click, draw its marker and start (or supersede) the update."""
        self.clicks.append(click)
        self._add_marker(click)
        self._start()

    def restore_clicks(self, clicks: list[Click]) -> None:
        """Show ``clicks`` as already applied (a reopened session): markers, no update runs.

        The next click refines with all of them, as if they had been made in this session.
        """
        self.clear_clicks()
        for click in clicks:
            self.clicks.append(click)
            self._add_marker(click)
        self._applied = len(self.clicks)

    def set_refiner_factory(self, factory) -> None:
        """Use ``factory(image) -> Refiner`` from the next click on (``None``: model-free).

        The clicks so far are forgotten (a different model would read them differently); the
        mask stays as it is.
        """
        self.clear_clicks()
        self.refiner_factory = factory
        self._refiner = None
        self._refiner_image = None

    def clear_clicks(self) -> None:
        """Forget the clicks and remove their markers (the mask stays as it is)."""
        self._jobs.drop("click")  # a running update's result is dropped
        self.clicks.clear()
        self._applied = 0
        for _click, _world, actors in self._markers:
            for view, actor in actors:
                view.scene.remove(actor)
                view.request_render()
        self._markers.clear()
        if self._running:
            self._running = False
            self.busy_changed.emit(False)

    # ---- work --------------------------------------------------------------------------------
    def _session(self) -> ClickSession:
        image = self.document.image
        if self._refiner is None or self._refiner_image is not image:
            if self.refiner_factory is not None:
                self._refiner = self.refiner_factory(image)
            else:
                from ctseg_gui.interactive.geodesic import GeodesicRefiner

                self._refiner = GeodesicRefiner(image)
            self._refiner_image = image
        editor = self.document.editor
        if editor is not self._editor:
            editor.changed.connect(self._on_editor_changed)
            self._editor = editor
        return ClickSession(editor, self.state.active_label, self._refiner)

    def _start(self) -> None:
        session = self._session()
        edits = self._edits
        mask = session.mask()
        clicks = list(self.clicks)
        start = self._applied
        refiner = self._refiner
        if not self._running:
            self._running = True
            self.busy_changed.emit(True)

        def work(_job) -> tuple:
            return _apply_clicks(refiner, mask, clicks, start), len(clicks), edits

        # A running update is superseded: its result is dropped when it arrives. It is not
        # cancelled (nothing in a refinement polls), it just finishes unseen.
        self._jobs.drop("click", cancel=False)
        self._jobs.run("click", work, on_result=self._on_update_done, on_error=self._on_failed)

    def _on_failed(self, message: str) -> None:
        self._running = False
        self.busy_changed.emit(False)
        self.failed.emit(message)

    def _on_update_done(self, payload) -> None:
        (region, values), count, edits = payload
        if edits != self._edits:  # the labels were edited meanwhile: redo on the current mask
            self._start()
            return
        self._running = False
        if region is not None:
            session = ClickSession(self.document.editor, self.state.active_label, self._refiner)
            last = self.clicks[count - 1]
            kind = "positive" if last.positive else "negative"
            self._own_edit = True
            try:
                session.apply_mask(region, values, f"{kind} click")
            finally:
                self._own_edit = False
        self._applied = count
        self.busy_changed.emit(False)
        self.updated.emit(region)

    def _on_editor_changed(self, _region) -> None:
        if not getattr(self, "_own_edit", False):
            self._edits += 1

    # ---- markers -----------------------------------------------------------------------------
    def _add_marker(self, click: Click) -> None:
        world = self.document.image.index_to_world(click.index)
        colour = POSITIVE_COLOUR if click.positive else NEGATIVE_COLOUR
        actors = []
        for view in self.views():
            if view.geometry is None:
                continue
            u, v, _ = view.geometry.to_plane(world)
            radius = 5.0 * view.scene.mm_per_pixel
            angles = np.linspace(0, 2 * np.pi, 17)[:-1]
            ring = [(u + radius * np.cos(a), v + radius * np.sin(a)) for a in angles]
            actors.append((view, view.scene.add_polyline(ring, colour, closed=True)))
        self._markers.append((click, world, actors))
        self._show_markers_on_slice()

    def _show_markers_on_slice(self) -> None:
        for _click, world, actors in self._markers:
            for view, actor in actors:
                w = view.geometry.to_plane(world)[2]
                actor.SetVisibility(view.geometry.slice_number(w) == view.slice_number)
                view.request_render()

    def visible_markers(self, view) -> list[Click]:
        """Clicks whose marker ``view`` shows now (tests, status text)."""
        return [
            click
            for click, _world, actors in self._markers
            for v, actor in actors
            if v is view and actor.GetVisibility()
        ]


def _apply_clicks(refiner, mask: np.ndarray, clicks: list[Click], start: int):
    """Apply clicks ``start..`` to a copy of ``mask``; the changed box and its new values."""
    before = mask
    mask = mask.copy()
    first = start if getattr(refiner, "incremental", True) else len(clicks) - 1
    for n in range(max(first, 0), len(clicks)):
        region, values = refiner.refine(mask, clicks[: n + 1])
        mask[region] = values
    region = changed_region(before, mask)
    return region, (mask[region] if region is not None else None)
