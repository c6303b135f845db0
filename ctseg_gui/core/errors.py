"""Errors and warnings that carry a message meant for the user.

Every failure the user can cause (a bad file, a wrong modality, a corrupt bundle) is raised as a
:class:`CtsegError` whose text names the file and the problem; front ends print that text alone and
keep the traceback for ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class CtsegError(Exception):
    """A problem the user can act on, with a one-line message.

    Parameters
    ----------
    message
        What went wrong, in words a radiologist understands.
    path
        The file or folder concerned, prefixed to the message when given.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = message
        super().__init__(f"{path}: {message}" if path is not None else message)


class ImageReadError(CtsegError):
    """An image or series could not be read."""


class GeometryMismatchError(CtsegError):
    """A label map does not lie on the grid of its image."""


class ModalityError(CtsegError):
    """The image is not a CT where a CT is required."""


class JobCancelled(CtsegError):
    """The caller asked a background job to stop; raised at the job's next poll point."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


class CtsegWarning(UserWarning):
    """Something the user should know about an input that was still loaded (e.g. uneven spacing)."""
