"""Label tables and label maps.

A :class:`LabelMap` is an integer array on the exact grid of its :class:`~ctseg_gui.core.volume.Volume`
plus a :class:`LabelTable` saying what each value means and how it is drawn.
"""

from __future__ import annotations

import colorsys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ctseg_gui.core.errors import GeometryMismatchError
from ctseg_gui.core.provenance import Provenance
from ctseg_gui.core.volume import Volume, grid_differences

# Colours for the first labels are the ones radiologists know from other tools; after that we walk
# the hue circle by the golden angle so neighbouring values never look alike.
_FIRST_COLOURS = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
]


def default_colour(value: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour for label ``value`` (1-based)."""
    if 1 <= value <= len(_FIRST_COLOURS):
        return _FIRST_COLOURS[value - 1]
    hue = (value * 0.618033988749895) % 1.0
    lightness = 0.45 + 0.15 * ((value // 7) % 2)
    saturation = 0.65 + 0.25 * ((value // 3) % 2)
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


@dataclass(frozen=True)
class LabelEntry:
    """One structure in a label table."""

    value: int
    name: str
    color: tuple[int, int, int]
    visible: bool = True
    group: str = ""

    def to_json(self) -> dict[str, Any]:
        """The sidecar form: ``{"value", "name", "color"}`` plus ``group`` when set."""
        data: dict[str, Any] = {"value": self.value, "name": self.name, "color": list(self.color)}
        if self.group:
            data["group"] = self.group
        return data


@dataclass
class LabelTable:
    """Ordered mapping from label value to :class:`LabelEntry` (0 is background, never listed)."""

    entries: dict[int, LabelEntry] = field(default_factory=dict)

    @classmethod
    def from_names(cls, names: dict[int, str] | Iterable[str]) -> LabelTable:
        """Build a table from ``{value: name}`` or a sequence of names for values 1, 2, ..."""
        items = names.items() if isinstance(names, dict) else enumerate(names, start=1)
        return cls({int(v): LabelEntry(int(v), str(n), default_colour(int(v))) for v, n in items})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelTable:
        """Parse the sidecar form ``{"labels": [{"value", "name", "color"}, ...]}``."""
        entries = {}
        for item in data.get("labels", []):
            value = int(item["value"])
            colour = tuple(int(c) for c in item.get("color", default_colour(value)))[:3]
            entries[value] = LabelEntry(
                value,
                str(item.get("name", f"label {value}")),
                colour,
                bool(item.get("visible", True)),
                str(item.get("group", "")),
            )
        return cls(entries)

    def to_json(self) -> dict[str, Any]:
        """The sidecar form, values in ascending order."""
        return {"labels": [self.entries[v].to_json() for v in sorted(self.entries)]}

    def ensure(self, values: Iterable[int]) -> None:
        """Add a generic entry for every non-zero value not yet in the table."""
        for value in values:
            value = int(value)
            if value and value not in self.entries:
                self.entries[value] = LabelEntry(value, f"label {value}", default_colour(value))

    def update(self, value: int, **changes: Any) -> LabelEntry:
        """Replace fields of one entry (name, color, visible, group) and return the new entry."""
        self.entries[value] = replace(self.entries[value], **changes)
        return self.entries[value]

    def next_free_value(self) -> int:
        """The smallest positive value not in use."""
        value = 1
        while value in self.entries:
            value += 1
        return value

    def __iter__(self) -> Iterator[LabelEntry]:
        return iter(self.entries[v] for v in sorted(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, value: int) -> LabelEntry:
        return self.entries[value]

    def __contains__(self, value: object) -> bool:
        return value in self.entries


class LabelMap:
    """Integer labels on the grid of an image, with their table.

    Parameters
    ----------
    array
        Integer voxels indexed ``[k, j, i]``, same shape as the image.
    image
        The image whose grid the labels lie on (its geometry is shared, not copied).
    table
        Names and colours; values present in ``array`` but missing here get generic entries.

    Attributes
    ----------
    provenance
        What made the labels (set where a model runs), or None; exports complete and write it.
    edit_tally
        Edit steps by description (``"paint"``, ``"positive click"``...), kept by
        :class:`~ctseg_gui.core.history.LabelEditor` (undone steps are taken off).
    """

    # Class defaults so maps built with __new__ (Document's empty map) have them too.
    provenance: Provenance | None = None
    edit_tally: Counter[str] | None = None

    def __init__(self, array: np.ndarray, image: Volume, table: LabelTable | None = None) -> None:
        if array.shape != image.array.shape:
            raise GeometryMismatchError(
                f"label array shape {array.shape} does not match the image {image.array.shape}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"label arrays hold integers, got {array.dtype}")
        self.array = array
        self.image = image
        self.table = table if table is not None else LabelTable()
        self.provenance = None
        self.edit_tally = Counter()
        # A max is a tenth of the cost of counting a 512 x 512 x 400 map; count only when some
        # value up to it may lack a table entry.
        top = int(array.max()) if array.size else 0
        if any(value not in self.table for value in range(1, top + 1)):
            self.table.ensure(self.present_values())

    @classmethod
    def empty(cls, image: Volume, table: LabelTable | None = None) -> LabelMap:
        """All-background labels for ``image``."""
        return cls(np.zeros(image.array.shape, dtype=np.uint16), image, table)

    @classmethod
    def from_volume(
        cls,
        labels: Volume,
        image: Volume,
        table: LabelTable | None = None,
        source: str | None = None,
    ) -> LabelMap:
        """Put a label volume read from disk onto ``image``, refusing any grid mismatch.

        Float files holding whole numbers are accepted (common from other tools); fractions and
        negative values are refused.
        """
        problems = grid_differences(image, labels)
        if problems:
            raise GeometryMismatchError(
                "label map is not on the image grid: " + "; ".join(problems), source
            )
        data = labels.array
        fractional = not np.issubdtype(data.dtype, np.integer) and (
            not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data))
        )
        if fractional:
            raise GeometryMismatchError("label map holds non-integer values", source)
        if data.size and data.min() < 0:
            raise GeometryMismatchError("label map holds negative values", source)
        top = int(data.max()) if data.size else 0
        return cls(data.astype(smallest_label_dtype(top), copy=False), image, table)

    def present_values(self) -> list[int]:
        """Non-zero values that occur in the array, ascending."""
        return list(self.voxel_counts())

    def voxel_counts(self) -> dict[int, int]:
        """Voxels per non-zero value present."""
        counts = label_counts(self.array)
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts) if v}

    def volume_ml(self, value: int) -> float:
        """Volume of one structure in millilitres."""
        voxel_ml = float(np.prod(self.image.spacing)) / 1000.0
        return float(np.count_nonzero(self.array == value)) * voxel_ml


# Voxels per bincount pass: 512 KB of intp temporaries stay in the CPU cache, 2.5x faster than
# 4M-voxel chunks (0.30 against 0.75 s for a 512 x 512 x 400 map), and never a copy of the map.
_CHUNK = 1 << 16


def label_counts(array: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``np.bincount`` of a label array (optionally weighted), in chunks.

    A plain ``bincount`` first converts the whole map to ``intp``: 800 MB for a 512 x 512 x 400
    map. Small chunks keep the temporaries small and in cache.
    """
    flat = array.reshape(-1)
    flat_weights = None if weights is None else weights.reshape(-1)
    total = np.zeros(int(flat.max()) + 1 if flat.size else 1)
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK].astype(np.intp)
        if flat_weights is None:
            part = np.bincount(chunk)
        else:
            part = np.bincount(chunk, weights=flat_weights[start : start + _CHUNK])
        total[: part.size] += part
    return total.astype(np.int64) if weights is None else total


def smallest_label_dtype(max_value: int) -> np.dtype:
    """The smallest unsigned integer dtype holding ``0..max_value``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)
