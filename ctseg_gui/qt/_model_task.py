"""Background work of the model manager dialog: a job on a plain thread (like
:mod:`ctseg_gui.qt.loader`). The manager's work is file copying, hashing and HTTP, which release
the GIL, so the dialog stays responsive; :class:`~ctseg_gui.qt.jobs.QtJobs` delivers its events
on the dialog's (GUI) thread. A :class:`~ctseg_gui.core.errors.JobCancelled` from the work ends
the job as cancelled with its message; any other error becomes one line, never a traceback.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable

from ctseg_gui.core.jobs import Job
from ctseg_gui.inference.overview import ModelStatus


def run_task(job: Job, work: Callable) -> object:
    """Job body: run ``work(report, cancelled)``; ``report(done, total)`` becomes progress events
    whose ``data`` is ``(bytes done, bytes total or None)`` (sizes may pass 2**31)."""
    last = [0.0, 0]  # time and bytes of the last report

    def report(done: int, total: int | None) -> None:
        # At most every 0.1 s or 0.5 % (1 MB when the size is unknown): no flood of queued
        # events, yet the bar is up to date when the connection stalls.
        now = time.monotonic()
        step = total / 200 if total else 1 << 20
        if now - last[0] >= 0.1 or done - last[1] >= step or (total and done >= total):
            last[:] = [now, done]
            job.progress(data=(done, total))

    return work(report, lambda: job.cancel_requested)


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
