"""DICOM SEG export and import with highdicom.

Export: a BINARY Segmentation referencing the source CT series slice by slice, one segment per
label value present (numbered 1..n as the standard requires; the original value is kept as the
segment's Tracking ID ``ctseg label <value>``), frames only where a segment is present, labels and
colours from the label table, the model in the segment's algorithm identification and the whole
provenance record as JSON in Image Comments.

Import: frames are put back on the referenced series' slices by their source SOP Instance UIDs,
so the labels come back on exactly the grid they were exported from.

The label map goes to highdicom as a label-map style array (one integer per voxel, segment
numbers), never as a one-hot stack: a 104-structure whole-body map on
512 x 512 x 400 would be 10.9 GB as booleans (see benchmarks/bench_dicom_seg.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.labels import LabelEntry, LabelMap, LabelTable, smallest_label_dtype
from ctseg_gui.core.provenance import Provenance
from ctseg_gui.io.dicom_export import (
    ReferencedSeries,
    check_on_grid,
    export_provenance,
    present_values,
    referenced_series,
    require,
)

_TRACKING = re.compile(r"^ctseg label (\d+)$")
MANUFACTURER = "ctseg-gui"


def export_seg(
    labels: LabelMap,
    dicom_dir: str | Path,
    path: str | Path,
    *,
    series_uid: str | None = None,
    series: ReferencedSeries | None = None,
) -> Path:
    """Write ``labels`` as a DICOM SEG referencing the series in ``dicom_dir``.

    Parameters
    ----------
    labels
        Labels on the grid of the series (checked).
    dicom_dir
        Folder of the source series.
    path
        The ``.dcm`` file to write.
    series_uid
        Which series of the folder (default: the largest CT series).
    series
        The referenced series, when the caller has it already.
    """
    hd = require("highdicom", "DICOM SEG export")
    from pydicom.sr.codedict import codes

    series = series or referenced_series(dicom_dir, series_uid)
    check_on_grid(labels, series)
    values = present_values(labels)
    record = export_provenance(labels, series)
    algorithm = _algorithm(hd, codes, record)
    automatic = "SEMIAUTOMATIC" if (record.clicks or record.edits) else "AUTOMATIC"
    descriptions = []
    for number, value in enumerate(values, start=1):
        entry = labels.table.entries.get(value)
        name = entry.name if entry else f"label {value}"
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],
                segmented_property_category=codes.SCT.AnatomicalStructure,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=automatic if algorithm is not None else "MANUAL",
                algorithm_identification=algorithm,
                tracking_uid=hd.UID(),
                tracking_id=f"ctseg label {value}",
                display_color=hd.color.CIELabColor.from_rgb(*(entry.color if entry else (0, 0, 0))),
            )
        )
    pixels = _segment_numbers(labels.array, values)
    source = series.headers[0]
    seg = hd.seg.Segmentation(
        source_images=series.headers,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=_series_number(source),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=record.algorithm_name[:64],
        software_versions=record.app_version,
        device_serial_number="none",
        content_label="CTSEG",
        content_description=record.summary()[:64],
        series_description=f"Segmentation: {record.algorithm_name}"[:64],
        omit_empty_frames=True,
    )
    seg.ImageComments = json.dumps({"ctseg_provenance": record.to_json()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        seg.save_as(path)
    except OSError as error:
        raise CtsegError(f"cannot write: {error.strerror or error}", path) from error
    return path


def import_seg(
    path: str | Path, dicom_dir: str | Path, *, series_uid: str | None = None
) -> LabelMap:
    """Read a SEG back onto the grid of the series it references.

    Segments with a ``ctseg label N`` Tracking ID get value N; others their segment number.
    The returned map's image is a zero-stride stand-in on the series grid; the provenance
    written by :func:`export_seg` comes back as ``labels.provenance``.

    Raises
    ------
    CtsegError
        Not a SEG, a SEG of another series, or overlapping segments.
    """
    hd = require("highdicom", "DICOM SEG import")
    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as error:  # noqa: BLE001 - pydicom/highdicom raise many types
        raise CtsegError(f"not a readable DICOM SEG ({error})", path) from error
    referenced = {item.SeriesInstanceUID for item in seg.get("ReferencedSeriesSequence", [])}
    series = referenced_series(
        dicom_dir, series_uid or (next(iter(referenced)) if len(referenced) == 1 else None)
    )
    if referenced and series.entry.uid not in referenced:
        raise CtsegError(
            f"the SEG references series {', '.join(sorted(referenced))}, not {series.entry.uid}",
            path,
        )
    numbers = list(seg.segment_numbers)
    values = {n: _label_value(seg.get_segment_description(n), n) for n in numbers}
    top = max(values.values(), default=0)
    uids = [str(header.SOPInstanceUID) for header in series.headers]
    try:
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=numbers,
            combine_segments=True,
            relabel=False,
            ignore_spatial_locations=True,
            assert_missing_frames_are_empty=True,
        )
    except (ValueError, KeyError, RuntimeError) as error:
        raise CtsegError(
            f"cannot place the SEG's frames on series {series.entry.uid} ({error})", path
        ) from error
    lookup = np.zeros(max(numbers, default=0) + 1, dtype=smallest_label_dtype(top))
    for number, value in values.items():
        lookup[number] = value
    array = lookup[pixels]
    table = LabelTable(
        {
            values[n]: LabelEntry(
                values[n],
                str(desc.segment_label),
                _rgb(hd, desc),
            )
            for n in numbers
            for desc in [seg.get_segment_description(n)]
        }
    )
    labels = LabelMap(np.ascontiguousarray(array), series.grid, table)
    labels.provenance = read_seg_provenance(seg)
    return labels


def read_seg_provenance(seg) -> Provenance | None:
    """The provenance JSON an export of ours put in Image Comments (None for other SEGs)."""
    try:
        data = json.loads(str(seg.get("ImageComments", "")))
        return Provenance.from_json(data["ctseg_provenance"])
    except (ValueError, KeyError, TypeError):
        return None


def _segment_numbers(array: np.ndarray, values: list[int]) -> np.ndarray:
    """The label map with values renumbered 1..n in ``values`` order (a lookup, one pass)."""
    lookup = np.zeros(int(array.max()) + 1, dtype=smallest_label_dtype(len(values)))
    lookup[values] = np.arange(1, len(values) + 1)
    out = lookup[array]
    # highdicom takes uint8 / uint16 label maps as they are.
    return out if out.dtype in (np.uint8, np.uint16) else out.astype(np.uint16)


def _algorithm(hd, codes, record: Provenance):
    if not (record.model_id or record.model_name):
        return None
    parameters = {
        key: value
        for key, value in (
            ("variant", record.variant),
            ("backend", record.backend),
            ("precision", record.precision),
            ("device", record.device),
        )
        if value
    }
    return hd.AlgorithmIdentificationSequence(
        name=record.algorithm_name[:64],
        family=codes.cid7162.ArtificialIntelligence,
        version=(record.model_version or "unknown")[:64],
        source=MANUFACTURER,
        parameters=parameters or None,
    )


def _label_value(description, number: int) -> int:
    match = _TRACKING.match(str(getattr(description, "tracking_id", "") or ""))
    return int(match.group(1)) if match else number


def _rgb(hd, description) -> tuple[int, int, int]:
    value = description.get("RecommendedDisplayCIELabValue")
    if not value:
        return (128, 128, 128)
    rgb = hd.color.CIELabColor.from_dicom_value([int(v) for v in value]).to_rgb(clip=True)
    return tuple(int(c) for c in rgb)  # type: ignore[return-value]


def _series_number(source) -> int:
    try:
        return int(source.get("SeriesNumber") or 0) + 1000
    except (TypeError, ValueError):
        return 1000
