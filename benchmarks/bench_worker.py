"""ct-tissues on a 512 x 512 x 400 CT: in this process beside through the compute worker.

The difference is what the worker costs a job: writing the CT to the exchange folder, the
messages, and reading the labels back. Runs alternate; medians of N runs and their ratio.

    python benchmarks/bench_worker.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.ct_tissues import segment_ct_tissues
from ctseg_gui.io import read_image
from ctseg_gui.worker import ComputeClient

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def large_ct() -> Volume:
    """The abdomen CT interpolated onto 512 x 512 x 400 voxels (int16, 200 MB)."""
    ct = read_image(DATA / "ct" / "abdomen_3mm.nii.gz")
    shape = (400, 512, 512)
    zoom = [n / s for n, s in zip(shape, ct.array.shape, strict=True)]
    array = ndimage.zoom(ct.array.astype(np.int16), zoom, order=1)
    spacing = tuple(s * n / m for s, n, m in zip(ct.spacing, ct.size, reversed(shape), strict=True))
    return Volume(array, spacing, ct.origin, ct.direction, {"modality": "CT"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    volume = large_ct()
    print(f"CT {volume.size} {volume.array.dtype}, {volume.array.nbytes / 1e6:.0f} MB")
    with ComputeClient() as client:
        start = time.perf_counter()
        client.wait_ready(120)
        print(f"worker start: {time.perf_counter() - start:.2f} s (pid {client.pid})")
        local, remote, inside = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            expected = segment_ct_tissues(volume)
            local.append(time.perf_counter() - start)
            start = time.perf_counter()
            job = client.submit_segment(volume)
            job.wait()
            remote.append(time.perf_counter() - start)
            inside.append(job.info["seconds"])
            assert job.state == "finished", job.error
            assert np.array_equal(job.result.array, expected.array)
    med = statistics.median
    print(f"{'':28s}{'median s':>10s}")
    print(f"{'in process (reference)':28s}{med(local):10.2f}")
    print(f"{'through the worker':28s}{med(remote):10.2f}")
    print(f"{'  of which the job itself':28s}{med(inside):10.2f}")
    print(f"ratio worker / in process: {med(remote) / med(local):.2f}")
    print(f"worker overhead per job: {med(remote) - med(inside):.2f} s")


if __name__ == "__main__":
    main()
