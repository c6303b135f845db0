"""The compute worker: the child process that owns torch and runs every model job.

Started by :class:`~ctseg_gui.worker.client.ComputeClient` as ``ctseg worker --connect ADDRESS``
(through :func:`ctseg_gui.launch.self_command`, so the frozen app starts itself). One process
serves many jobs, one at a time, so networks the engine has loaded stay warm between jobs.

Threads: the main thread runs jobs; a reader thread receives messages, so a ``cancel`` is seen
while a job computes (it sets the flag the job polls) and the end of the connection (the app
closed or died) stops the worker.
"""

from __future__ import annotations

import importlib
import os
import queue
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctseg_gui.inference.memory import give_back_free_memory
from ctseg_gui.worker.protocol import AUTHKEY_ENV
from ctseg_gui.worker.requests import image_key, job_name

if TYPE_CHECKING:
    from ctseg_gui.worker.requests import Request

#: Job kinds and the functions that run them, as ``module:function`` so that only the job that
#: runs imports its dependencies. Each is ``fn(request, inputs, progress, cancelled) ->
#: (outputs, info)`` (``request`` from :mod:`ctseg_gui.worker.requests`) with ``inputs`` / ``outputs`` mapping names to numpy arrays.
JOBS: dict[str, str] = {
    "segment": "ctseg_gui.worker.jobs:segment",
    "clicks": "ctseg_gui.worker.jobs:clicks",
    "estimate": "ctseg_gui.worker.jobs:estimate",
    "check_backends": "ctseg_gui.worker.jobs:check_backends",
    "echo": "ctseg_gui.worker.jobs:echo",
    "warm_up": "ctseg_gui.worker.jobs:warm_up",
    "status": "ctseg_gui.worker.jobs:status",
}


class _Worker:
    def __init__(self, conn) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.jobs: queue.Queue = queue.Queue()
        self.running_id: int | None = None
        self.cancel_flag = threading.Event()
        self.state_lock = threading.Lock()
        self.cancel_requested: set[int] = set()
        self.jobs_done = 0
        # The last image a job brought, kept so the next job on it (a click, another model)
        # need not send it again: (key, array).
        self.image: tuple[str, Any] | None = None

    def send(self, *message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)

    # ---- reader thread -------------------------------------------------------------------
    def read_messages(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "job":
                    self.jobs.put(message)
                elif message[0] == "cancel":
                    with self.state_lock:
                        self.cancel_requested.add(message[1])
                        if self.running_id == message[1]:
                            self.cancel_flag.set()
                elif message[0] == "shutdown":
                    break
        except (EOFError, OSError):
            pass  # the app closed the connection or died: stop after the current poll point
        self.cancel_flag.set()
        self.jobs.put(None)

    # ---- main thread ---------------------------------------------------------------------
    def serve(self) -> None:
        threading.Thread(target=self.read_messages, name="ctseg-worker-reader", daemon=True).start()
        self.send("ready", os.getpid())
        while True:
            message = self.jobs.get()
            if message is None:
                return
            _, job_id, request, inputs, folder = message
            self.keep_image(image_key(request), inputs)
            with self.state_lock:
                if job_id in self.cancel_requested:
                    self.send("cancelled", job_id)
                    continue
                self.running_id = job_id
                self.cancel_flag.clear()
            try:
                self.run_job(job_id, request, inputs, Path(folder))
            except (EOFError, OSError, BrokenPipeError):
                return  # the app went away while we were answering
            finally:
                with self.state_lock:
                    self.running_id = None
                    self.cancel_requested.discard(job_id)
                give_back_free_memory()  # idle at the size of what the worker still holds

    def keep_image(self, key: str | None, inputs: dict[str, str]) -> None:
        """Hold a private copy of a job's image (the exchange file goes when the job ends)."""
        if key is None or "image" not in inputs:
            return
        from ctseg_gui.worker._exchange import read_array

        self.image = None  # release the previous image before reading the next
        array = read_array(inputs["image"])
        array.flags.writeable = False  # shared by later jobs: no job may change it
        self.image = (key, array)

    def run_job(self, job_id: int, request: Request, inputs: dict[str, str], folder: Path) -> None:
        from ctseg_gui.core.errors import CtsegError, CtsegWarning
        from ctseg_gui.inference.errors import JobCancelled
        from ctseg_gui.worker._exchange import map_array, write_array

        self.send("started", job_id)
        start = time.perf_counter()

        def progress(stage: str, fraction: float) -> None:
            self.send("progress", job_id, str(stage), float(fraction))

        try:
            function = _job_function(job_name(request))
            arrays = {name: map_array(path) for name, path in inputs.items() if name != "image"}
            if image_key(request) is not None:
                if self.image is None or self.image[0] != image_key(request):
                    raise CtsegError("the compute worker no longer holds the image; run again")
                arrays["image"] = self.image[1]
            elif "image" in inputs:
                arrays["image"] = map_array(inputs["image"])
            with warnings.catch_warnings(record=True) as caught:
                # Our warnings (e.g. "GPU out of memory, running on the CPU") reach the user;
                # library noise stays in the worker.
                warnings.simplefilter("always", CtsegWarning)
                outputs, info = function(request, arrays, progress, self.cancel_flag.is_set)
                for item in caught:
                    if issubclass(item.category, CtsegWarning):
                        self.send("warning", job_id, str(item.message))
            del arrays
            if self.cancel_flag.is_set():
                raise JobCancelled()
            paths = {}
            for name, array in outputs.items():
                paths[name] = str(write_array(folder / f"out-{name}.npy", array))
        except JobCancelled:
            self.send("cancelled", job_id)
            return
        except Exception as error:  # noqa: BLE001 - every failure becomes a message for the user
            if not isinstance(error, CtsegError):  # a bug, not bad input: keep the traceback
                traceback.print_exc(file=sys.stderr)
            self.send("error", job_id, error_message(error))
            return
        self.jobs_done += 1
        # The server's facts first: a job's own keys (an estimate's "seconds") are never replaced.
        info = {
            "seconds": time.perf_counter() - start,
            "worker_pid": os.getpid(),
            "jobs_done": self.jobs_done,
            **info,
        }
        self.send("result", job_id, paths, info)


def _job_function(kind: str) -> Callable:
    from ctseg_gui.core.errors import CtsegError

    if kind not in JOBS:
        raise CtsegError(f"the compute worker has no job called {kind!r}")
    module, name = JOBS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def error_message(error: BaseException) -> str:
    """One line for the user: our own errors as they are, others with their type."""
    from ctseg_gui.core.errors import CtsegError

    if isinstance(error, CtsegError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory in the compute worker; try a smaller image or a low-resolution model"
    text = str(error).strip().splitlines()
    detail = text[0] if text else ""
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def serve(address: str | tuple, authkey: bytes | None = None) -> int:
    """Connect to the app at ``address`` and serve jobs until it disconnects.

    Parameters
    ----------
    address
        The app's ``multiprocessing.connection.Listener`` address.
    authkey
        The connection's key; by default read (hex) from ``$CTSEG_WORKER_AUTHKEY``.
    """
    import signal
    from multiprocessing.connection import Client

    # Ctrl+C in the app's terminal reaches the whole process group; the app decides when the
    # worker ends (it closes the connection), so a stray interrupt must not look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if authkey is None:
        authkey = bytes.fromhex(os.environ.pop(AUTHKEY_ENV, ""))
    conn = Client(address, authkey=authkey or None)
    try:
        _Worker(conn).serve()
    finally:
        conn.close()
    return 0
