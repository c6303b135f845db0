"""Is this image a CT in Hounsfield units? Needed before any CT model touches it."""

from __future__ import annotations

import numpy as np

from ctseg_gui.core.errors import ModalityError
from ctseg_gui.core.volume import Volume


def looks_like_ct(volume: Volume) -> bool:
    """Whether the intensities look like CT Hounsfield units.

    CT in HU has air near -1000 outside (or inside: lungs, bowel) the body and nothing far below
    -1100 except padding at -1024..-3024. MR and raw, unrescaled CT stay at or above zero.
    """
    sample = volume.array[:: max(1, volume.array.shape[0] // 16)]
    low, high = np.percentile(sample, [1, 99.9])
    return bool(low <= -500 and low >= -3100 and high <= 40000)


def describe_modality(volume: Volume) -> str:
    """``"CT"`` / ``"MR"``... when the file says so, otherwise a guess marked as such."""
    if volume.modality:
        return volume.modality
    return "unknown (CT-like HU)" if looks_like_ct(volume) else "unknown (not CT-like)"


def require_ct(volume: Volume, source: str | None = None) -> None:
    """Refuse images that are not CT in HU, for the commands that run CT models.

    Raises
    ------
    ModalityError
        The file records another modality, or records none and its values are not HU.
    """
    source = source or volume.metadata.get("source")
    if volume.modality and volume.modality != "CT":
        raise ModalityError(
            f"modality is {volume.modality}, not CT: the CT models would give meaningless labels",
            source,
        )
    if not volume.modality and not looks_like_ct(volume):
        low, high = volume.hu_range()
        raise ModalityError(
            f"values {low:g}..{high:g} do not look like CT Hounsfield units (no air near -1000); "
            "is this an MR or an unrescaled CT?",
            source,
        )
