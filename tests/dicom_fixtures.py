"""Inputs the DICOM interop tests derive from tests/data at run time."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from ctseg_gui.core.labels import LabelMap, LabelTable

DATA = Path(__file__).parent / "data"


def series_with_uids(source: Path, target: Path) -> Path:
    """A copy of a series with the UIDs its anonymiser blanked (study, series, instances).

    tests/data's series has empty SOP Instance / Series / Study UIDs; hospital series have them,
    and SEG and RTSTRUCT need them to reference the slices. Pixel data is copied unchanged.
    """
    target.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    for path in sorted(source.iterdir()):
        dataset = pydicom.dcmread(path)
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        dataset.SeriesNumber = 3
        dataset.save_as(target / path.name)
    return target


def organ_labels(grid) -> LabelMap:
    """The reference 104-class map's middle slices, scaled onto ``grid`` (nearest neighbour).

    Not anatomy of this CT (the map belongs to abdomen_3mm.nii.gz), but real organ shapes with
    holes, several parts per slice and many structures: what contouring and SEG encoding meet.
    """
    reference = np.asarray(nib.load(DATA / "labels" / "abdomen_3mm_totalseg_v1.nii.gz").dataobj)
    reference = reference.astype(np.uint8).transpose(2, 1, 0)  # [k, j, i]
    slices, rows, columns = grid.array.shape
    middle = reference.shape[0] // 2
    part = reference[middle - slices // 2 : middle - slices // 2 + slices]
    jj = np.arange(rows) * part.shape[1] // rows
    ii = np.arange(columns) * part.shape[2] // columns
    array = np.ascontiguousarray(part[:, jj][:, :, ii])
    names = json.loads((DATA / "labels" / "totalseg_v1_104_names.json").read_text())
    table = LabelTable.from_names({int(value): name for value, name in names.items()})
    return LabelMap(array, grid, table)


def rasterise_rtstruct(dataset, roi_number: int, grid) -> np.ndarray:
    """One ROI's contours filled on ``grid`` (even-odd: nested contours are holes).

    Independent of rt-utils: world -> index with our geometry, polygons filled by Pillow.
    """
    from PIL import Image, ImageDraw

    mask = np.zeros(grid.array.shape, dtype=bool)
    for roi in dataset.ROIContourSequence:
        if int(roi.ReferencedROINumber) != roi_number:
            continue
        for contour in roi.get("ContourSequence", []):
            points = grid.world_to_index(np.asarray(contour.ContourData, float).reshape(-1, 3))
            # Vertices lie on voxel centres (outlines traced through boundary voxels) and on
            # their slice's plane, to well under a thousandth of a voxel; drawing the exact
            # centres keeps Pillow from deciding edge voxels by rounding noise.
            assert np.abs(points - np.round(points)).max() < 1e-3, "vertex off the voxel grid"
            points = np.round(points)
            k = int(points[0, 2])
            assert np.all(points[:, 2] == k), "contour off its slice plane"
            image = Image.new("1", (grid.size[0], grid.size[1]), 0)
            xy = [tuple(p) for p in points[:, :2]]
            draw = ImageDraw.Draw(image)
            if len(xy) >= 3:
                draw.polygon(xy, fill=1, outline=1)
            else:  # a one- or two-pixel part
                draw.line(xy + xy[:1], fill=1)
            mask[k] ^= np.asarray(image, dtype=bool)
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))
