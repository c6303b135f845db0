"""Background work of the model manager dialog: a worker thread reporting through Qt signals.

A plain thread (like :mod:`ctseg_gui.qt.loader`): the manager's work is file copying, hashing and
HTTP, which release the GIL, so the dialog stays responsive. Signals emitted here are queued to
the dialog's (GUI) thread by Qt.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.inference.errors import JobCancelled
from ctseg_gui.inference.overview import ModelStatus


class TaskSignals(QObject):
    """Emitted from the worker thread; Qt queues them to the dialog's (GUI) thread."""

    progressed = Signal(object, object)  # bytes done, bytes total or None (may pass 2**31)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)


def run_task(work: Callable, signals: TaskSignals, cancel: threading.Event) -> None:
    """Worker-thread body: run ``work(report, cancelled)`` and turn every outcome into a signal."""
    last = [0.0, 0]  # time and bytes of the last report

    def report(done: int, total: int | None) -> None:
        # At most every 0.1 s or 0.5 % (1 MB when the size is unknown): no flood of queued
        # events, yet the bar is up to date when the connection stalls.
        now = time.monotonic()
        step = total / 200 if total else 1 << 20
        if now - last[0] >= 0.1 or done - last[1] >= step or (total and done >= total):
            last[:] = [now, done]
            signals.progressed.emit(done, total)

    try:
        result = work(report, cancel.is_set)
    except JobCancelled as error:
        outcome = (signals.cancelled, str(error))
    except CtsegError as error:
        outcome = (signals.failed, str(error))
    except Exception as error:  # noqa: BLE001 - e.g. a full disk: one line, never a traceback
        outcome = (signals.failed, f"{type(error).__name__}: {error}")
    else:
        outcome = (signals.succeeded, result)
    with contextlib.suppress(RuntimeError):  # the dialog was deleted while the work ran
        outcome[0].emit(outcome[1])


def details_html(row: ModelStatus) -> str:
    """Rich text about one model for the dialog's details area (links to its sources)."""

    def esc(text: object) -> str:
        return html.escape(str(text))

    links = " · ".join(
        f'<a href="{esc(url)}">{esc(kind)}</a>' if url.startswith("http") else esc(url)
        for kind, url in row.sources
    )
    lines = [
        f"<b>{esc(row.title)}</b> &nbsp; <span style='color:#9a9da5'>{esc(row.model_id)}</span>",
        f"{esc(row.task)}",
        f"Licence: {esc(row.licence)}",
        f"Sources: {links or esc(row.source)}",
    ]
    if row.path is not None:
        lines.append(f"Folder: {esc(row.path)}")
    return "<br>".join(lines)
