"""Viewer speed: slice redraw while scrolling a 512 x 512 x 400 CT, and launch to first image.

1. Redraw: the abdomen CT (and its 104-class label map) resampled onto a 512 x 512 x 400 grid
   (about 0.71 x 0.59 x 0.84 mm), shown in the main window (2x2 layout, labels on). One step = the
   axial view scrolls one slice (state change, slice extraction, label colouring, VTK render).
   Reference in the same run: a bare ``vtkImageReslice`` + ``vtkImageActor`` pipeline in a window
   of the same size, moving its reslice origin by one slice per render.
2. Launch to first image: ``ctseg-gui tests/data/dicom/abdomen_ct_20`` started as a new process,
   until the first CT slice is drawn (``CTSEG_REPORT_FIRST_IMAGE``). Reference: a new Python
   process that reads the same series with SimpleITK and renders one slice with bare VTK.

Goals: median redraw <= 16 ms; first image <= 2 s. Run under a display (``xvfb-run -a``).

    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_viewer.py [--steps N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SIZE = (512, 512, 400)


def resampled_case():
    """CT and labels of the abdomen case on the 512 x 512 x 400 grid, as Volume + LabelMap."""
    import SimpleITK as sitk

    from ctseg_gui.core.labels import LabelMap
    from ctseg_gui.io._sitk import volume_from_sitk

    ct = sitk.ReadImage(str(DATA / "ct" / "abdomen_3mm.nii.gz"), sitk.sitkInt16)
    labels = sitk.ReadImage(str(DATA / "labels" / "abdomen_3mm_totalseg_v1.nii.gz"), sitk.sitkUInt8)
    extent = [n * s for n, s in zip(ct.GetSize(), ct.GetSpacing(), strict=True)]
    spacing = [e / n for e, n in zip(extent, SIZE, strict=True)]
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize(SIZE)
    resampler.SetOutputSpacing(spacing)
    resampler.SetOutputOrigin(ct.GetOrigin())
    resampler.SetOutputDirection(ct.GetDirection())
    resampler.SetDefaultPixelValue(-1024)
    resampler.SetInterpolator(sitk.sitkLinear)
    volume = volume_from_sitk(resampler.Execute(ct))
    resampler.SetDefaultPixelValue(0)
    resampler.SetInterpolator(sitk.sitkNearestNeighbor)
    label_array = sitk.GetArrayFromImage(resampler.Execute(labels))
    return volume, LabelMap(label_array, volume)


def time_viewer(volume, labels, steps: int):
    from PySide6.QtWidgets import QApplication

    from ctseg_gui.qt.main_window import QtMainWindow

    app = QApplication.instance() or QApplication([])
    window = QtMainWindow(interactive=False)
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    window._on_loader_image_loaded(volume, "bench")  # as after a load: cursor centred, drawn
    window.document.set_labels(labels)
    window.render_all()
    app.processEvents()
    axial = window.slice_views["axial"]
    assert axial.scene.has_overlay, "the overlay must be part of the redraw"
    axial.scroll(-steps // 2)
    axial.render_now()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        axial.scroll(1)
        axial.render_now()
        times.append(time.perf_counter() - start)
    window.state.labels_visible = False  # the same scroll back without the overlay
    plain = []
    for _ in range(steps):
        start = time.perf_counter()
        axial.scroll(-1)
        axial.render_now()
        plain.append(time.perf_counter() - start)
    size = (axial.width(), axial.height())
    app.processEvents()
    window.close()
    return times, plain, size


def time_bare_vtk(volume, steps: int, size: tuple[int, int]) -> list[float]:
    from vtkmodules import vtkInteractionStyle, vtkRenderingOpenGL2  # noqa: F401
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkImagingCore import vtkImageReslice
    from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderer, vtkRenderWindow

    data = vtkImageData()
    data.SetDimensions(*volume.size)
    data.SetSpacing(*volume.spacing)
    data.GetPointData().SetScalars(numpy_to_vtk(volume.array.reshape(-1), deep=False))
    reslice = vtkImageReslice()
    reslice.SetInputData(data)
    reslice.SetOutputDimensionality(2)
    reslice.SetInterpolationModeToNearestNeighbor()
    actor = vtkImageActor()
    actor.GetMapper().SetInputConnection(reslice.GetOutputPort())
    actor.GetProperty().SetColorWindow(400)
    actor.GetProperty().SetColorLevel(40)
    renderer = vtkRenderer()
    renderer.AddActor(actor)
    window = vtkRenderWindow()
    window.SetMultiSamples(0)  # as in our views: the fairest (fastest) bare pipeline
    window.SetSize(*size)
    window.AddRenderer(renderer)
    k0 = volume.size[2] // 2 - steps // 2
    reslice.SetResliceAxesOrigin(0, 0, k0 * volume.spacing[2])
    window.Render()
    renderer.ResetCamera()
    times = []
    for n in range(steps):
        start = time.perf_counter()
        reslice.SetResliceAxesOrigin(0, 0, (k0 + n + 1) * volume.spacing[2])
        window.Render()
        times.append(time.perf_counter() - start)
    window.Finalize()
    return times


REFERENCE_LAUNCH = """
import sys, time, os
import SimpleITK as sitk
from vtkmodules import vtkInteractionStyle, vtkRenderingOpenGL2
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderer, vtkRenderWindow
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(sys.argv[1]))
array = sitk.GetArrayFromImage(reader.Execute())
plane = array[array.shape[0] // 2].copy()
data = vtkImageData(); data.SetDimensions(plane.shape[1], plane.shape[0], 1)
data.GetPointData().SetScalars(numpy_to_vtk(plane.reshape(-1), deep=True))
actor = vtkImageActor(); actor.GetMapper().SetInputData(data)
renderer = vtkRenderer(); renderer.AddActor(actor)
window = vtkRenderWindow(); window.SetMultiSamples(0); window.SetSize(800, 600); window.AddRenderer(renderer)
renderer.ResetCamera(); window.Render()
open(os.environ["CTSEG_REPORT_FIRST_IMAGE"], "w").write(f"{time.time():.6f}\\n")
"""


def launch_time(command: list[str], timeout: float = 60.0) -> float:
    """Seconds from starting ``command`` until it reports its first image."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "first_image.txt"
        env = {**os.environ, "CTSEG_REPORT_FIRST_IMAGE": str(report)}
        env["CTSEG_CONFIG_DIR"] = folder  # keep recent files out of the user's settings
        start = time.time()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            while not report.exists():
                if process.poll() is not None and not report.exists():
                    raise RuntimeError(f"{command[0]} exited with {process.returncode}")
                if time.time() - start > timeout:
                    raise RuntimeError("no first image within the timeout")
                time.sleep(0.01)
            return float(report.read_text()) - start
        finally:
            process.terminate()
            process.wait(10)


def _summary(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120, help="slices scrolled per measurement")
    parser.add_argument("--launches", type=int, default=3, help="launches per start-up timing")
    args = parser.parse_args()

    started = time.perf_counter()
    volume, labels = resampled_case()
    print(
        f"volume {' x '.join(map(str, volume.size))} voxels, spacing "
        f"{' x '.join(f'{s:.3f}' for s in volume.spacing)} mm "
        f"(prepared in {time.perf_counter() - started:.1f} s)"
    )
    ours, plain, size = time_viewer(volume, labels, args.steps)
    bare = time_bare_vtk(volume, args.steps, size)
    (ours_med, ours_p95), (bare_med, bare_p95) = _summary(ours), _summary(bare)
    print(f"\nslice redraw while scrolling ({args.steps} steps, view {size[0]} x {size[1]} px)")
    print(f"{'':34s}{'median ms':>10s}{'p95 ms':>10s}")
    print(f"{'ctseg-gui axial view (+labels)':34s}{ours_med:10.2f}{ours_p95:10.2f}")
    print(
        f"{'ctseg-gui axial view (no labels)':34s}" + "".join(f"{v:10.2f}" for v in _summary(plain))
    )
    print(f"{'bare vtkImageReslice+ImageActor':34s}{bare_med:10.2f}{bare_p95:10.2f}")
    print(f"ratio ours/bare: median {ours_med / bare_med:.2f}x, p95 {ours_p95 / bare_p95:.2f}x")
    print(f"goal median <= 16 ms: {'met' if ours_med <= 16 else 'NOT met'}")

    dicom = str(DATA / "dicom" / "abdomen_ct_20")
    app = [sys.executable, "-m", "ctseg_gui.qt.app", dicom]
    ref = [sys.executable, "-c", REFERENCE_LAUNCH, dicom]
    app_times, ref_times = [], []
    for _ in range(args.launches):  # alternate so machine noise hits both alike
        app_times.append(launch_time(app))
        ref_times.append(launch_time(ref))
    app_med, ref_med = statistics.median(app_times), statistics.median(ref_times)
    print(f"\nlaunch to first image, {dicom} (median of {args.launches})")
    print(f"{'ctseg-gui (window, 4 views, DICOM)':40s}{app_med:8.2f} s")
    print(f"{'bare SimpleITK read + VTK render':40s}{ref_med:8.2f} s")
    print(f"ratio ours/bare: {app_med / ref_med:.2f}x; goal <= 2 s: "
          f"{'met' if app_med <= 2.0 else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
