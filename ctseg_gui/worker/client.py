"""The app's side of the compute worker: start it, feed it jobs, relay events, restart it.

:class:`ComputeClient` is Qt-free and thread-safe. It keeps one worker process
(``ctseg worker --connect ADDRESS``, started through :func:`ctseg_gui.launch.self_command` so the
frozen app starts itself) and one supervisor thread that launches the worker, reads its messages
and restarts it when it dies. Jobs queue in the client and go to the worker one at a time, so a
queued job can be cancelled without the worker ever seeing it.

Events (:class:`~ctseg_gui.worker.protocol.JobEvent`) reach the ``on_event`` callback of each job
on the supervisor thread, in order: ``started``, ``progress`` (and ``warning``)..., then exactly one
of ``result``, ``error`` or ``cancelled``. A GUI must hop them to its own thread
(``ctseg_gui.qt.worker_bridge``).
"""

from __future__ import annotations

import collections
import itertools
import subprocess
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.worker._exchange import ExchangeFolder, read_array, remove_folder, write_array
from ctseg_gui.worker._process import WorkerStartError, start_worker_process
from ctseg_gui.worker.handle import EventCallback, JobHandle
from ctseg_gui.worker.protocol import JobEvent, JobResult, describe_exit
from ctseg_gui.worker.requests import (
    ClicksRequest,
    EstimateRequest,
    ImageGeometry,
    Request,
    SegmentRequest,
    WarmUpRequest,
    request_for,
)
from ctseg_gui.worker.requests import image_key as request_image_key

# A worker that dies this many times in a row without finishing a job is not restarted again
# until the next submit: a broken installation must not spin.
_MAX_CONSECUTIVE_FAILURES = 3


class ComputeClient:
    """Runs jobs in a long-lived compute worker process.

    Parameters
    ----------
    on_status
        Called (on the supervisor thread) with one-line news about the worker: started,
        stopped unexpectedly and restarting, could not start.
    warm_up
        Import torch and MONAI in the worker as soon as it starts, so the first model run does
        not wait for them.
    start_timeout
        Seconds the worker may take to start and connect.
    autostart
        Start the worker now (in the background); otherwise on :meth:`start` or the first submit.
    """

    def __init__(
        self,
        *,
        on_status: Callable[[str], None] | None = None,
        warm_up: bool = False,
        start_timeout: float = 120.0,
        autostart: bool = True,
    ) -> None:
        self._on_status = on_status
        self._warm_up = warm_up
        self._start_timeout = start_timeout
        self._lock = threading.RLock()
        self._queue: collections.deque[JobHandle] = collections.deque()
        self._running: JobHandle | None = None
        self._conn = None
        self._proc: subprocess.Popen | None = None
        self._pid: int | None = None
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        self._ids = itertools.count(1)
        self._exchange = ExchangeFolder()
        self._supervisor: threading.Thread | None = None
        self._finished_jobs = 0
        # The worker keeps the last image it was sent (see server): key of that image, so the
        # next job on the same image (a click, another model) does not send it again.
        self._worker_image_key: str | None = None
        self._image_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        #: How many times the worker was restarted after dying.
        self.restarts = 0
        if autostart:
            self.start()

    # ---- public API ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """Process id of the running worker (None while it starts)."""
        return self._pid

    def start(self) -> None:
        """Start the worker in the background (no-op when already started)."""
        with self._lock:
            if self._closed:
                raise CtsegError("the compute client is closed")
            if self._supervisor is None:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="ctseg-compute-client", daemon=True
                )
                self._supervisor.start()
        self._wake.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a worker is connected; False on timeout."""
        self.start()
        return self._ready.wait(timeout)

    def submit(
        self,
        kind: str | Request,
        params: dict[str, Any] | None = None,
        inputs: dict[str, np.ndarray] | None = None,
        *,
        on_event: EventCallback | None = None,
        finish: Callable[[JobResult], Any] | None = None,
    ) -> JobHandle:
        """Queue a job: a typed request, or ``kind`` (a name in ``ctseg_gui.worker.server.JOBS``).

        Parameters
        ----------
        kind
            A :class:`~ctseg_gui.worker.requests.Request`, or the name of one.
        params
            With a name: the request's fields.
        inputs
            Arrays for the job; they are written once to the exchange folder, never pickled.
        on_event
            Receives every :class:`JobEvent` of the job, on the client's thread.
        finish
            Turns the :class:`JobResult` into what the ``result`` event carries (run on the
            client's thread; an exception there becomes an ``error`` event).
        """
        request = request_for(kind, params) if isinstance(kind, str) else kind
        inputs = dict(inputs or {})
        job_id = next(self._ids)
        nbytes = sum(int(np.asarray(a).nbytes) for a in inputs.values())
        folder = self._exchange.job_folder(job_id, 2 * nbytes)
        job = JobHandle(self, job_id, request, inputs, folder, on_event, finish)
        with self._lock:
            if self._closed:
                remove_folder(folder)
                raise CtsegError("the compute client is closed")
            self._queue.append(job)
            self._dispatch()
        self.start()
        return job

    def submit_segment(
        self,
        volume,
        model_id: str | None = "ct-tissues",
        *,
        bundle: str | Path | None = None,
        variant: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "auto",
        on_event: EventCallback | None = None,
    ) -> JobHandle:
        """Segment ``volume``; the ``result`` event carries a LabelMap on ``volume``'s grid.

        ``backend`` as ``ctseg segment --backend``; the LabelMap's ``run_info`` says what ran.

        The worker gets a copy of the voxels; ``volume`` itself is never touched, whatever
        happens to the worker.
        """
        from ctseg_gui.core.labels import LabelMap, LabelTable
        from ctseg_gui.core.provenance import Provenance

        request = SegmentRequest(
            ImageGeometry.of(volume),
            image_key=self.image_key(volume),
            model_id=model_id,
            bundle=None if bundle is None else str(bundle),
            variant=variant,
            device=device,
            precision=precision,
            backend=backend,
        )

        def finish(result: JobResult) -> LabelMap:
            table = LabelTable.from_json(result.info.get("table", {}))
            labels = LabelMap(result.arrays["labels"], volume, table)
            if result.info.get("provenance"):
                labels.provenance = Provenance.from_json(result.info["provenance"])
            if result.info.get("run_info"):
                labels.run_info = dict(result.info["run_info"])
            return labels

        return self.submit(request, None, {"image": volume.array}, on_event=on_event, finish=finish)

    def image_key(self, volume) -> str:
        """A key naming ``volume`` for the worker's image cache (stable while it lives)."""
        with self._lock:
            key = self._image_keys.get(volume)
            if key is None:
                key = self._image_keys[volume] = uuid.uuid4().hex
            return key

    def estimate(
        self,
        volume,
        model_id: str | None,
        *,
        variant: str | None = None,
        device: str = "auto",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The engine's resource estimate for segmenting ``volume``, computed in the worker.

        Blocks until the answer arrives (call it off the GUI thread). Raises
        :class:`~ctseg_gui.core.errors.CtsegError` with the worker's message when it fails.
        """
        request = EstimateRequest(
            ImageGeometry.of(volume),
            tuple(int(n) for n in volume.array.shape),
            model_id=model_id,
            variant=variant,
            device=device,
        )
        job = self.submit(request, finish=lambda result: result.info)
        if not job.wait(timeout):
            job.cancel()
            raise CtsegError("the compute worker did not answer the resource estimate in time")
        if job.state != "finished":
            raise CtsegError(job.error or f"resource estimate {job.state}")
        return job.result

    def submit_clicks(
        self,
        volume,
        mask: np.ndarray,
        clicks: list,
        bundle: str | Path,
        *,
        device: str = "auto",
        backend: str = "torch",
        on_event: EventCallback | None = None,
    ) -> JobHandle:
        """One click refinement with a Deepgrow / DeepEdit bundle, in the worker.

        The image is sent once and kept in the worker (so its network stays warm for it); each
        click sends only the structure's current ``mask``. The ``result`` event carries
        ``(region, values)``: the box of the image that changed and the new mask inside it.
        """
        request = ClicksRequest(
            ImageGeometry.of(volume),
            tuple((tuple(int(v) for v in c.index), bool(c.positive)) for c in clicks),
            str(bundle),
            image_key=self.image_key(volume),
            device=device,
            backend=backend,
        )

        def finish(result: JobResult):
            region = tuple(slice(start, stop) for start, stop in result.info["region"])
            return region, result.arrays["values"]

        inputs = {"image": volume.array, "mask": np.asarray(mask, dtype=bool)}
        return self.submit(request, None, inputs, on_event=on_event, finish=finish)

    def cancel(self, job: JobHandle) -> None:
        """Cancel ``job`` (see :meth:`JobHandle.cancel`)."""
        job.cancel()

    def _cancel(self, job: JobHandle) -> None:
        """The handle's canceller: drop a queued job, or ask the worker to stop a running one."""
        dropped = False
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                dropped = True
            elif job is self._running and self._conn is not None:
                self._send(("cancel", job.id))
        if dropped:
            self._end(job, JobEvent(job.id, "cancelled"))

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every job, stop the worker and remove the exchange files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            proc = self._proc
            if self._conn is not None:
                self._send(("shutdown",))
        for job in queued:
            job.cancel_requested = True
            self._end(job, JobEvent(job.id, "cancelled"))
        self._wake.set()
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout)
        self._exchange.close()

    def __enter__(self) -> ComputeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- supervisor thread -----------------------------------------------------------------
    def _supervise(self) -> None:
        failures = 0
        while not self._closed:
            if failures >= _MAX_CONSECUTIVE_FAILURES:
                self._wake.clear()
                self._wake.wait()  # until the next submit (or close)
                failures = 0
                continue
            try:
                proc, conn, pid = start_worker_process(self._start_timeout)
            except WorkerStartError as error:
                failures += 1
                self._status(str(error))
                self._fail_queued(str(error))
                continue
            with self._lock:
                if self._closed:
                    conn.send(("shutdown",))
                    conn.close()
                    proc.wait(self._start_timeout)
                    return
                self._proc, self._conn, self._pid = proc, conn, pid
                self._ready.set()
                if self._warm_up:
                    self._queue.appendleft(self._warm_up_job())
                self._dispatch()
            self._status(f"compute worker started (pid {pid})")
            finished_before = self._finished_jobs
            self._read(conn)
            failures = 0 if self._finished_jobs > finished_before else failures + 1
            self._after_exit(proc)

    def _read(self, conn) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            try:
                self._handle(message)
            except Exception:  # noqa: BLE001 - one bad message must not stop the client
                traceback.print_exc()

    def _after_exit(self, proc: subprocess.Popen) -> None:
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with self._lock:
            running, self._running = self._running, None
            if self._conn is not None:
                self._conn.close()
            self._conn, self._proc, self._pid = None, None, None
            self._worker_image_key = None
            self._ready.clear()
            closed = self._closed
            if not closed:
                self.restarts += 1
        if closed:
            if running is not None:  # the client was closed while the job ran
                self._end(running, JobEvent(running.id, "cancelled"))
            return
        message = (
            f"the compute worker stopped unexpectedly ({describe_exit(code)}); restarting it. "
            "Your image and labels are untouched."
        )
        self._status(message)
        if running is not None:
            self._end(running, JobEvent(running.id, "error", message=message))

    def _handle(self, message: tuple) -> None:
        kind, job_id = message[0], message[1]
        with self._lock:
            job = self._running if self._running and self._running.id == job_id else None
        if job is None:
            return  # a late message for a job the client already ended
        if kind == "started":
            job.started()
        elif kind == "progress":
            job.progress(message[2], message[3])
        elif kind == "warning":
            job.warn(message[2])
        elif kind == "result":
            if job.cancel_requested:  # finished before it saw the flag: the user asked to stop
                self._end(job, JobEvent(job_id, "cancelled"))
                return
            try:
                arrays = {name: read_array(path) for name, path in message[2].items()}
                result = JobResult(arrays, dict(message[3]))
                job.info = result.info
                value = job._finish(result) if job._finish else result
            except Exception as error:  # noqa: BLE001 - becomes the job's error message
                text = str(error) if isinstance(error, CtsegError) else repr(error)
                self._end(job, JobEvent(job_id, "error", message=text))
                return
            self._finished_jobs += 1
            self._end(job, JobEvent(job_id, "result", result=value))
        elif kind == "error":
            self._end(job, JobEvent(job_id, "error", message=message[2]))
        elif kind == "cancelled":
            self._end(job, JobEvent(job_id, "cancelled"))

    # ---- helpers (any thread) --------------------------------------------------------------
    def _dispatch(self) -> None:
        """Send the next queued job when the worker is idle (caller holds the lock)."""
        if self._conn is None or self._running is not None or not self._queue:
            return
        job = self._queue.popleft()
        self._running = job
        try:
            message, sends_image = self._job_message(job)
        except Exception as error:  # noqa: BLE001 - e.g. the exchange folder is full
            self._running = None
            text = f"could not hand the data to the compute worker: {error}"
            self._end(job, JobEvent(job.id, "error", message=text))
            return
        if not self._send(message):
            self._running = None
            self._queue.appendleft(job)  # the worker is gone; the restart will send it
        elif sends_image:
            self._worker_image_key = request_image_key(job.request)

    def _job_message(self, job: JobHandle) -> tuple[tuple, bool]:
        """The ``job`` message; the image is left out when the worker already holds it."""
        inputs = dict(job._inputs)
        key = request_image_key(job.request)
        if key is not None and key == self._worker_image_key:
            inputs.pop("image", None)
        paths = {n: str(write_array(job._folder / f"in-{n}.npy", a)) for n, a in inputs.items()}
        message = ("job", job.id, job.request, paths, str(job._folder))
        return message, key is not None and "image" in paths

    def _send(self, message: tuple) -> bool:
        try:
            self._conn.send(message)
        except (OSError, ValueError, AttributeError):
            return False
        return True

    def _end(self, job: JobHandle, event: JobEvent) -> None:
        job._inputs = {}
        remove_folder(job._folder)  # results were copied out of it
        job.emit(event)
        with self._lock:
            if self._running is job:
                self._running = None
            self._dispatch()

    def _status(self, message: str) -> None:
        if self._on_status is not None:
            try:
                self._on_status(message)
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    def _fail_queued(self, message: str) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            self._end(job, JobEvent(job.id, "error", message=message))

    def _warm_up_job(self) -> JobHandle:
        job_id = next(self._ids)
        folder = self._exchange.job_folder(job_id, 0)
        return JobHandle(self, job_id, WarmUpRequest(), {}, folder, None, None)
