"""The ``ctseg-gui`` command: headless screenshot of the whole window, errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PySide6.QtGui import QImage


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ctseg_gui.qt.app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_screenshot_includes_the_vtk_views(tmp_path, small_ct, monkeypatch):
    monkeypatch.setenv("CTSEG_CONFIG_DIR", str(tmp_path / "config"))
    out = tmp_path / "shot.png"
    result = _run(str(small_ct), "--screenshot", str(out))
    assert result.returncode == 0, result.stderr
    image = QImage(str(out)).convertToFormat(QImage.Format.Format_RGB888)
    assert image.width() >= 1000 and image.height() >= 700
    pixels = (
        np.frombuffer(image.constBits(), np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3]
        .reshape(image.height(), image.width(), 3)
    )
    # The top-left view (axial) holds CT greys, not the black of an ungrabbed GL window.
    axial = pixels[80 : image.height() // 2 - 20, 20 : image.width() // 3]
    grey = (np.abs(axial[..., 0].astype(int) - axial[..., 2]) < 6) & (axial[..., 0] > 60)
    assert grey.mean() > 0.05


def test_bad_labels_fail_with_the_file_named(tmp_path, small_ct, abdomen_ct, monkeypatch):
    monkeypatch.setenv("CTSEG_CONFIG_DIR", str(tmp_path / "config"))
    # abdomen_ct is not on small_ct's grid: refused with a message, exit 1, no traceback.
    result = _run(
        str(small_ct), "--labels", str(abdomen_ct), "--screenshot", str(tmp_path / "x.png")
    )
    assert result.returncode == 1
    assert abdomen_ct.name in result.stderr and "Traceback" not in result.stderr
