"""A submitted compute job as the app sees it: a :class:`~ctseg_gui.core.jobs.Job` that knows
its request, its arrays and its exchange folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ctseg_gui.core.jobs import EventCallback, Job
from ctseg_gui.worker.protocol import JobResult
from ctseg_gui.worker.requests import Request, job_name

if TYPE_CHECKING:
    from ctseg_gui.worker.client import ComputeClient

__all__ = ["EventCallback", "JobHandle"]


class JobHandle(Job):
    """A job queued in (or run by) the compute worker; see :class:`~ctseg_gui.core.jobs.Job`."""

    def __init__(
        self,
        client: ComputeClient,
        job_id: int,
        request: Request,
        inputs: dict[str, np.ndarray],
        folder: Path,
        on_event: EventCallback | None,
        finish: Callable[[JobResult], Any] | None,
    ) -> None:
        super().__init__(job_name(request), job_id, on_event=on_event, canceller=client._cancel)
        self.request = request
        self._inputs = inputs  # written to the exchange folder when the job goes to the worker
        self._folder = folder
        self._finish = finish
