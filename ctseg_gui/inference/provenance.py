"""The model part of a label map's provenance, recorded where a model runs."""

from __future__ import annotations

import json

from ctseg_gui.core.provenance import Provenance
from ctseg_gui.inference.modelref import ModelRef


def model_version(ref: ModelRef) -> str:
    """The catalog's version of the model, else the bundle's ``configs/metadata.json`` version."""
    if ref.builtin:
        from ctseg_gui import __version__

        return __version__
    if ref.model_id:
        from ctseg_gui.inference.catalog import load_catalog

        manifest = load_catalog().get(ref.model_id)
        if manifest is not None and manifest.version and manifest.version != "unknown":
            return manifest.version
    if ref.bundle is not None:
        try:
            meta = json.loads((ref.bundle / "configs" / "metadata.json").read_text())
            return str(meta.get("version", ""))
        except (OSError, ValueError):
            return ""
    return ""


def model_provenance(
    ref: ModelRef, device, precision: str, autocast=None, backend: str = "torch"
) -> Provenance:
    """What ran: model, version, variant, backend, precision mode and arithmetic, device.

    Parameters
    ----------
    ref
        The model that ran.
    device
        A ``torch.device`` or its name.
    precision
        The mode asked for (``auto``, ``fp32``, ``reduced``).
    autocast
        The autocast dtype the network ran under (None for float32).
    backend
        What ran the network.
    """
    arithmetic = str(autocast).replace("torch.", "") if autocast is not None else "float32"
    return Provenance(
        model_id=ref.model_id or "",
        model_name=ref.name,
        model_version=model_version(ref),
        variant=ref.variant or "",
        backend=backend,
        precision=f"{precision} ({arithmetic})",
        device=str(getattr(device, "type", device)),
    )
