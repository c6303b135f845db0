"""File > Save Session / Open Session, and putting a saved session back into the window.

The file format and all reading and writing live in :mod:`ctseg_gui.io.session` (Qt-free); this
module turns the window's state into a :class:`~ctseg_gui.io.session.Session` and back: labels and
their table, the click tool's clicks (markers, the structure they edit), rulers and ROIs, and the
viewer state. Opening reads and checks the whole session file before anything open is replaced,
so a bad or newer file gives one message and the current work stays.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

SESSION_FILTER = "ctseg sessions (*.ctseg);;All files (*)"


def session_state(window) -> dict:
    """Clicks, measurements and view state of ``window`` as JSON (autosave keeps this)."""
    return current_session(window, with_image=False).extras_json()


def current_session(window, with_image: bool = True):
    """The window's work as a :class:`~ctseg_gui.io.session.Session` (labels not included).

    ``with_image`` adds the image's reference, whose checksum reads every voxel once per image.
    """
    from ctseg_gui.core.labels import LabelTable
    from ctseg_gui.io.session import ClickRecord, ImageRef, MeasurementRecord, Session

    document = window.document
    image = document.image
    reference = ImageRef(str(document.path or ""))
    if with_image and image is not None and document.path is not None:
        reference = ImageRef.of(image, document.path)
    tool = window.tools["clicks"]
    session = Session(
        reference,
        document.labels.table if document.labels is not None else LabelTable(),
        [ClickRecord(tuple(c.index), bool(c.positive)) for c in tool.clicks],
        window.state.active_label if tool.clicks else None,
        [
            MeasurementRecord(m.view.view, int(m.slice_number), m.kind, m.start, m.end, m.text)
            for m in window.measurements
        ],
        window.state.to_json(),
    )
    return session


def default_session_path(window) -> Path:
    """Where Save Session first offers to write: the open session, else beside the image."""
    if getattr(window, "session_path", None) is not None:
        return Path(window.session_path)
    from ctseg_gui.qt.label_actions import default_labels_path

    labels = default_labels_path(window.document)
    return labels.with_name(labels.name.removesuffix("_labels.nii.gz") + ".ctseg")


def save_session(window, path: str | Path | None = None, ask: bool = False) -> bool:
    """Write the session file; returns whether it is on disk now."""
    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.io.session import save_session as write

    document = window.document
    if document.labels is None or document.path is None:
        window._report("open an image before saving a session")
        return False
    if path is None:
        path = default_session_path(window)
        if window.interactive and (ask or getattr(window, "session_path", None) is None):
            chosen, _ = QFileDialog.getSaveFileName(
                window, "Save session", str(path), SESSION_FILTER
            )
            if not chosen:
                return False
            path = chosen
    try:
        written = write(path, current_session(window), document.labels)
    except CtsegError as error:
        window._report(str(error))
        return False
    window.session_path = written
    document.editor.mark_saved()
    if window.autosave is not None:
        window.autosave.discard()
    if window.interactive:
        from ctseg_gui.qt import recent

        window._update_recent(recent.add_recent(written))
    window.statusBar().showMessage(f"Session saved to {written}", 8000)
    return True


def choose_session(window) -> None:
    """File > Open Session…"""
    path, _ = QFileDialog.getOpenFileName(window, "Open session", "", SESSION_FILTER)
    if path:
        open_session(window, path)


def open_session(window, path: str | Path) -> bool:
    """Read ``path`` and start loading its image; the rest follows in :func:`restore_session`.

    Returns False (with one message, nothing open touched) for a bad, newer or orphaned session.
    """
    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.io.session import read_session

    try:
        session = read_session(path)
    except CtsegError as error:
        window._report(str(error))
        return False
    image = session.image.locate(path)
    if not image.exists():
        window._report(f"{path}: the session's image is gone: {image} does not exist")
        return False
    if not window._confirm_discard():
        return False
    window._pending_session = (Path(path), session)
    window._pending_labels = None
    window.loader.open_image(str(image), session.image.series_uid)
    return True


def restore_session(window, path: Path, session, volume) -> None:
    """Put the session's labels, clicks, measurements and view on the freshly loaded image."""
    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.io.session import load_labels

    if not session.image.matches(volume):
        _warn(
            window,
            f"{path}: the image changed since the session was saved "
            f"({session.image.path}); check the labels before relying on them",
        )
    try:
        labels = load_labels(path, session, volume)
    except CtsegError as error:
        window._report(str(error))  # the image stays open, with empty labels
        return
    window.document.set_labels(labels)
    window.session_path = path
    restore_extras(window, session)
    if window.interactive:
        from ctseg_gui.qt import recent

        window._update_recent(recent.add_recent(path))
    window.setWindowTitle(f"{path.name} - ctseg-gui")
    window._message.setText(
        f"Session {path.name}: {len(labels.table)} structures, {len(session.clicks)} clicks, "
        f"{len(session.measurements)} measurements"
    )


def restore_extras(window, session) -> None:
    """View state, then the clicks (on their structure), then rulers and ROIs."""
    from ctseg_gui.interactive.clicks import Click
    from ctseg_gui.qt.measure_tools import restore_measurement

    try:
        window.state.apply_json(session.view)
    except ValueError as error:
        _warn(window, f"view not restored: {error}")
    if session.clicks and session.click_label is not None:
        window.state.active_label = session.click_label
        window.tools["clicks"].restore_clicks(
            [Click(tuple(c.index), c.positive) for c in session.clicks]
        )
    window.clear_measurements()
    for item in session.measurements:
        view = window.slice_views.get(item.view)
        if view is not None and view.geometry is not None:
            restore_measurement(
                view, item.slice, item.kind, item.start, item.end, window.measurements, item.text
            )


def restore_recovered_extras(window, data: dict | None) -> None:
    """Clicks, measurements and view from an autosave (nothing when it had none or is bad)."""
    from ctseg_gui.io.session import ImageRef, Session

    if not data:
        return
    session = Session(ImageRef(""))
    try:
        session.apply_extras(data)
    except (KeyError, TypeError, ValueError):
        return  # the labels are what matters; a damaged extra must not block the recovery
    restore_extras(window, session)


def _warn(window, message: str) -> None:
    window.warnings.append(message)
    window.statusBar().showMessage(message, 15000)
    if window.interactive:
        QMessageBox.warning(window, "ctseg-gui", message)
    else:
        import sys

        print(f"ctseg-gui: warning: {message}", file=sys.stderr)
