"""Inference layer (Qt-free): model catalog, model manager, MONAI bundle engine.

Importing this package is cheap; torch and MONAI load when a model first runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctseg_gui.inference.errors import BundleError, JobCancelled, ModelNotFoundError
from ctseg_gui.inference.modelref import BUILTIN_MODELS, ModelRef, resolve_model

if TYPE_CHECKING:
    from ctseg_gui.inference.engine import estimate_resources, segment_volume

__all__ = [
    "BUILTIN_MODELS",
    "BundleError",
    "JobCancelled",
    "ModelNotFoundError",
    "ModelRef",
    "estimate_resources",
    "resolve_model",
    "segment_volume",
]


def __getattr__(name: str) -> Any:
    # The engine imports numpy helpers only, but keep it out of `import ctseg_gui.inference`.
    if name in ("segment_volume", "estimate_resources", "clear_model_cache"):
        from ctseg_gui.inference import engine

        return getattr(engine, name)
    raise AttributeError(name)
