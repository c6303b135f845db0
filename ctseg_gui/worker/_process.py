"""Start the compute worker process and connect to it.

The worker is ``ctseg worker --connect ADDRESS`` started by :func:`ctseg_gui.launch.start_child`
(which training runs use too): in a source install ``python -m ctseg_gui.cli worker``, in the
frozen app ``<app> worker`` (the app's entry dispatches ``ctseg`` subcommands), so no Python
interpreter is needed. The app listens on a ``multiprocessing.connection`` address (a Unix socket,
or a named pipe on Windows) with a random key, handed to the child in its environment.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from multiprocessing.connection import Client, Listener
from typing import Any

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.worker.protocol import AUTHKEY_ENV, describe_exit


class WorkerStartError(CtsegError):
    """The compute worker process could not be started."""


def start_worker_process(timeout: float) -> tuple[subprocess.Popen, Any, int]:
    """Start a worker and wait until it has connected and said it is ready.

    Returns
    -------
    tuple
        The process, the connection to it, and the worker's process id.

    Raises
    ------
    WorkerStartError
        The process could not be started, died, or did not connect within ``timeout`` seconds.
    """
    from ctseg_gui.launch import start_child

    authkey = os.urandom(32)
    listener = Listener(authkey=authkey)
    try:
        proc = start_child(
            "worker", "--connect", str(listener.address), env={AUTHKEY_ENV: authkey.hex()}
        )
    except OSError as error:
        listener.close()
        raise WorkerStartError(f"could not start the compute worker: {error}") from error
    try:
        conn = _accept(listener, authkey, proc, timeout)
        if not conn.poll(timeout):
            raise WorkerStartError("the compute worker did not answer")
        kind, pid = conn.recv()
    except (WorkerStartError, EOFError, OSError) as error:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        raise WorkerStartError(
            f"the compute worker could not start ({describe_exit(code)}): {error}"
        ) from error
    finally:
        listener.close()
    return proc, conn, int(pid)


def _accept(listener: Listener, authkey: bytes, proc: subprocess.Popen, timeout: float):
    """``listener.accept()`` that gives up when the child dies or takes too long."""
    box: dict[str, Any] = {}

    def accept() -> None:
        try:
            box["conn"] = listener.accept()
        except Exception as error:  # noqa: BLE001 - reported below
            box["error"] = error

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive():
        thread.join(0.05)
        if thread.is_alive() and (proc.poll() is not None or time.monotonic() > deadline):
            # accept() cannot be interrupted portably: satisfy it with a throwaway client.
            with contextlib.suppress(Exception):
                Client(listener.address, authkey=authkey).close()
            thread.join(5)
            box.pop("conn", None)
            reason = "exited" if proc.poll() is not None else "did not connect in time"
            raise WorkerStartError(f"the worker {reason}")
    if "conn" not in box:
        raise WorkerStartError(f"the worker did not connect: {box.get('error')}")
    return box["conn"]
