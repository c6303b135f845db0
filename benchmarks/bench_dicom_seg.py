"""DICOM SEG export of a 104-structure whole-body map on a 512 x 512 x 400 series: time and memory.

Builds (once, cached in ``--work``) a 400-slice 512 x 512 CT series from the abdomen CT in
tests/data, resampled, with its 104-class reference label map resampled onto the same grid
(nearest neighbour), then runs, each in its own process so peak memory is that process's
ru_maxrss:

* ``ours``: ``ctseg export-seg LABELS SERIES -o SEG.dcm`` (reads the labels and headers too);
* ``naive``: the straightforward highdicom call (``--naive onehot``: the documented multi-segment
  input, a 4D one-hot boolean stack (slices, rows, columns, segments); ``--naive labelmap``: the
  label map with all 104 structures described);

and ``ctseg import-seg`` on our SEG, checking the voxels come back identical.

Usage::

    python benchmarks/bench_dicom_seg.py [--slices 400] [--naive labelmap|onehot|none]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def build_case(work: Path, slices: int, size: int = 512) -> tuple[Path, Path]:
    """The resampled series and labels (kept when already built with the same size)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from scipy import ndimage

    from ctseg_gui.core.labels import LabelMap, LabelTable
    from ctseg_gui.io import read_image, write_label_map

    series_dir, labels_path = work / f"ct_{slices}", work / f"labels_{slices}.nii.gz"
    if labels_path.exists() and len(list(series_dir.glob("*.dcm"))) == slices:
        return series_dir, labels_path
    series_dir.mkdir(parents=True, exist_ok=True)
    ct = read_image(DATA / "ct" / "abdomen_3mm.nii.gz")  # [k, j, i], LPS after the reader
    reference = read_image(DATA / "labels" / "abdomen_3mm_totalseg_v1.nii.gz")
    zoom = (slices / ct.array.shape[0], size / ct.array.shape[1], size / ct.array.shape[2])
    hu = ndimage.zoom(ct.array.astype(np.int16), zoom, order=1, grid_mode=True, mode="nearest")
    labels = ndimage.zoom(
        reference.array.astype(np.uint8), zoom, order=0, grid_mode=True, mode="nearest"
    )
    spacing = [s * n / m for s, n, m in zip(ct.spacing, ct.size, (size, size, slices), strict=True)]
    template = pydicom.dcmread(next((DATA / "dicom" / "abdomen_ct_20").iterdir()))
    template.decompress()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    direction = ct.direction
    for k in range(slices):
        ds = template.copy()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber, ds.InstanceNumber = 7, k + 1
        origin = np.asarray(ct.origin) + direction @ (np.asarray(spacing) * [0, 0, k])
        ds.ImagePositionPatient = [f"{v:.4f}" for v in origin]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.4f}"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        for key in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if key in ds:
                del ds[key]
        ds.PixelData = np.ascontiguousarray(hu[k]).tobytes()
        ds.save_as(series_dir / f"ct_{k:04d}.dcm", enforce_file_format=True)
    grid = read_image(series_dir)
    names = json.loads((DATA / "labels" / "totalseg_v1_104_names.json").read_text())
    table = LabelTable.from_names({int(v): n for v, n in names.items()})
    write_label_map(LabelMap(np.ascontiguousarray(labels), grid, table), labels_path)
    return series_dir, labels_path


NAIVE = r"""
import sys, numpy as np, pydicom, highdicom as hd
from pydicom.sr.codedict import codes
from ctseg_gui.io import dicom, read_label_map
series_dir, labels_path, out, mode = sys.argv[1:5]
entry = dicom.choose_series(dicom.scan_folder(series_dir))
grid, slices = dicom.series_grid(entry)
headers = [pydicom.dcmread(s.path, stop_before_pixels=True) for s in slices]
labels = read_label_map(labels_path, grid)
values = sorted(labels.table.entries)
algorithm = hd.AlgorithmIdentificationSequence(
    name="wholebody", family=codes.cid7162.ArtificialIntelligence, version="1")
descriptions = [hd.seg.SegmentDescription(
    segment_number=n, segment_label=labels.table[v].name,
    segmented_property_category=codes.SCT.AnatomicalStructure,
    segmented_property_type=codes.SCT.Tissue, algorithm_type="AUTOMATIC",
    algorithm_identification=algorithm) for n, v in enumerate(values, 1)]
array = labels.array
if mode == "onehot":
    array = np.stack([array == v for v in values], axis=-1)
seg = hd.seg.Segmentation(
    source_images=headers, pixel_array=array, segmentation_type="BINARY",
    segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=1,
    sop_instance_uid=hd.UID(), instance_number=1, manufacturer="bench",
    manufacturer_model_name="bench", software_versions="1", device_serial_number="1")
seg.save_as(out)
"""


def measure(command: list[str], log: Path, repeat: int = 1) -> tuple[float, float, int]:
    """Best wall seconds and peak RSS (MB) of ``repeat`` runs, and the last exit code.

    The best of several runs, because the machines these run on are often shared.
    """
    runs = [_measure_once(command, log) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]


def _measure_once(command: list[str], log: Path) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with open(log, "wb") as errors:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(log.read_text()[-2000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1024.0, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--naive", choices=["labelmap", "onehot", "none"], default="labelmap")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best one shown")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "ctseg-gui-bench")
    args = parser.parse_args()
    started = time.perf_counter()
    series_dir, labels_path = build_case(args.work, args.slices)
    print(
        f"case: {args.slices} slices of 512 x 512 in {series_dir} "
        f"(built or found in {time.perf_counter() - started:.1f} s)"
    )
    python = sys.executable
    ours = args.work / "ours.seg.dcm"
    log = args.work / "stderr.log"
    wall, rss, code = measure(
        [
            python,
            "-m",
            "ctseg_gui.cli",
            "export-seg",
            str(labels_path),
            str(series_dir),
            "-o",
            str(ours),
        ],
        log,
        args.repeat,
    )
    print(
        f"ours   export-seg : {wall:7.1f} s  peak RSS {rss:7.0f} MB  exit {code}  "
        f"{ours.stat().st_size / 2**20:.0f} MB file"
    )
    back = args.work / "back.nii.gz"
    iwall, irss, icode = measure(
        [python, "-m", "ctseg_gui.cli", "import-seg", str(ours), str(series_dir), "-o", str(back)],
        log,
    )
    print(f"ours   import-seg : {iwall:7.1f} s  peak RSS {irss:7.0f} MB  exit {icode}")
    from ctseg_gui.io import read_image

    same = np.array_equal(read_image(back).array, read_image(labels_path).array)
    print(f"round trip identical voxels: {same}")
    if args.naive != "none":
        naive = args.work / "naive.seg.dcm"
        nwall, nrss, ncode = measure(
            [python, "-c", NAIVE, str(series_dir), str(labels_path), str(naive), args.naive],
            log,
            args.repeat,
        )
        print(
            f"naive  highdicom ({args.naive}): {nwall:7.1f} s  peak RSS {nrss:7.0f} MB  "
            f"exit {ncode}"
        )
        if not ncode and not code:
            print(f"ratio naive/ours: time {nwall / wall:.2f}x, peak memory {nrss / rss:.2f}x")
    return 0 if (code == 0 and same) else 1


if __name__ == "__main__":
    sys.exit(main())
