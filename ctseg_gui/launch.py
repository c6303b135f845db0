"""How this installation starts its own child processes (the compute worker, helper commands).

In the frozen (PyInstaller) app ``sys.executable`` is the app itself, not a Python interpreter: it
cannot run ``-m module`` or ``-c code``. Its entry point (``app/ctseg_app.py``) instead dispatches a
``ctseg`` subcommand given as first argument. Build every child command line with
:func:`self_command` so the same code works in the frozen app and in a source install.
"""

from __future__ import annotations

import sys


def is_frozen() -> bool:
    """True inside the PyInstaller-built app."""
    return bool(getattr(sys, "frozen", False))


def self_command(subcommand: str, *args: str) -> list[str]:
    """Command line that runs ``ctseg <subcommand> <args>`` with this installation.

    Parameters
    ----------
    subcommand : str
        A name in ``ctseg_gui.cli.COMMANDS`` (e.g. the worker's own subcommand).
    *args : str
        Further arguments for the subcommand.

    Returns
    -------
    list of str
        ``[app, subcommand, *args]`` in the frozen app; ``[python, "-m", "ctseg_gui.cli",
        subcommand, *args]`` in a source or wheel install.
    """
    if is_frozen():
        return [sys.executable, subcommand, *args]
    return [sys.executable, "-m", "ctseg_gui.cli", subcommand, *args]


def start_child(
    subcommand: str,
    *args: str,
    env: dict[str, str] | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    cwd: str | None = None,
):
    """Start ``ctseg <subcommand> <args>`` as a child process of this installation.

    The one launcher of the compute worker and of training runs: no console window on Windows,
    no stdin, the child in its own process group on POSIX only when its output is piped (a
    training run, stopped by its own SIGTERM, must not get the terminal's Ctrl+C meant for us).

    Parameters
    ----------
    subcommand, *args
        As for :func:`self_command`.
    env
        Extra environment variables on top of this process's.
    stdout, stderr
        ``subprocess.PIPE`` to read the child's output; None to share ours.
    cwd
        Working folder of the child.

    Returns
    -------
    subprocess.Popen
        The started process (text mode, line-buffered, when ``stdout`` is piped).

    Raises
    ------
    OSError
        The process could not be started.
    """
    import os
    import subprocess

    piped = stdout is not None
    kwargs = {}
    if piped:
        kwargs = {"text": True, "bufsize": 1, "encoding": "utf-8", "errors": "replace"}
        if os.name == "posix":
            kwargs["start_new_session"] = True
    return subprocess.Popen(
        self_command(subcommand, *args),
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        **kwargs,
    )


def describe_exit(returncode: int | None) -> str:
    """How a child process ended, in words (``exit code 3``, ``killed by signal 9 (SIGKILL)``)."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return f"killed by signal {-returncode}"
        return f"killed by signal {-returncode} ({name})"
    if returncode in (0xC0000005, -1073741819):
        return f"exit code {returncode} (access violation)"
    return f"exit code {returncode}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (True when that cannot be told cheaply: Windows, or a
    process of another user), so that callers only clean up after processes surely gone."""
    import os

    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
