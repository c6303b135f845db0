"""Parity check of every installed backend for one model, on windows of a real CT.

``ctseg backends check`` and the worker's ``check_backends`` job call
:func:`check_model_backends`; its record is what ``--backend auto`` chooses from.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.modelref import ModelRef


def central_windows(image, settings, count: int):
    """``(count, 1, *roi)`` windows of ``image`` (``(1, X, Y, Z)``) nearest its centre.

    The centre of a CT holds the most tissue, so these windows exercise the most classes.
    """
    import torch

    from ctseg_gui.inference.sliding import _pad, plan_windows

    roi, padded, pads, slices = plan_windows(tuple(image.shape[1:]), settings)
    data = _pad(image[None], pads, settings)
    centre = np.asarray(padded) / 2.0
    mids = [np.array([(s.start + s.stop) / 2.0 for s in w]) for w in slices]
    order = np.argsort([float(np.linalg.norm(m - centre)) for m in mids], kind="stable")
    chosen = [slices[i] for i in order[: max(1, count)]]
    return torch.cat([data[(slice(None), slice(None), *w)] for w in chosen]).float()


def check_model_backends(
    volume: Volume,
    model: ModelRef,
    *,
    device: str = "auto",
    windows: int = 2,
    candidates=None,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, dict]:
    """Check each installed backend and precision against torch float32 for ``model``.

    Preprocesses ``volume`` as a segmentation would, runs ``windows`` central windows through
    each candidate, records the result (see :mod:`.choice`) and returns it.
    """
    from ctseg_gui.inference.backends.choice import CANDIDATES, check_parity
    from ctseg_gui.inference.bundle import get_network
    from ctseg_gui.inference.engine import _plan, keeps_probabilities, resolve_device
    from ctseg_gui.inference.errors import BundleError
    from ctseg_gui.inference.preprocess import plan_steps, run_steps
    from ctseg_gui.inference.sliding import WindowSettings

    if model.builtin:
        raise BundleError(f"{model.name} is built in and runs no network: nothing to check")
    target = resolve_device(device)
    plan = _plan(model)
    network = get_network(model, plan, target)
    steps = plan_steps(plan.transforms, plan.image_key)
    if steps is None:
        raise BundleError(
            f"{model.name}: its preprocessing is not one the fast path knows; backends are "
            "checked on the fast path's windows only",
            model.bundle,
        )
    image = run_steps(volume.array.transpose(2, 1, 0), volume.affine_ras, steps, target).image
    settings = WindowSettings.from_inferer(plan.inferer)
    batch = central_windows(image, settings, windows)
    return check_parity(
        network,
        target,
        batch,
        labels_only=not keeps_probabilities(plan, image[0].numel()),
        candidates=CANDIDATES if candidates is None else candidates,
        bundle_amp=plan.amp,
        progress=progress,
    )
