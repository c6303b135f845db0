"""Errors raised by the inference layer (all carry a user-facing message)."""

from __future__ import annotations

from ctseg_gui.core.errors import CtsegError, JobCancelled

__all__ = ["BundleError", "JobCancelled", "ModelNotFoundError"]


class BundleError(CtsegError):
    """A bundle cannot be used: bad config, missing or mismatched weights, failing transforms."""


class ModelNotFoundError(CtsegError):
    """A model id is unknown or the model is not installed."""
