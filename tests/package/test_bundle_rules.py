"""The rules that decide what the frozen app ships (no build needed)."""

from __future__ import annotations

import pytest
from _frozen_helpers import bundle_rules, package_build


@pytest.mark.parametrize(
    "dest",
    [
        "torch/include/ATen/ATen.h",
        "torch/test/test_api",
        "torch/bin/test_jit",
        "torch/lib/libtorchbind_test.so",
        "torch/lib/libtorch_cuda.so",
        "nvidia/cublas/lib/libcublas.so.12",
        "libcudart.so.12",
        "PySide6/Qt/lib/libQt6WebEngineCore.so.6",
        "PySide6/Qt/lib/libQt6Quick.so.6",
        "PySide6/Qt/plugins/platforms/libqvnc.so",
        "PySide6/Qt/qml/QtQuick/Controls/qmldir",
        "scipy/special/tests/data/boost.npz",
    ],
)
def test_unused_files_are_dropped(dest):
    assert bundle_rules.drop_reason(dest) is not None


@pytest.mark.parametrize(
    "dest",
    [
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libc10.so",
        "torch/testing/_comparison.py",  # imported by `import torch`
        "torch/bin/torch_shm_manager",  # started by torch to share tensors between processes
        "PySide6/Qt/lib/libQt6Widgets.so.6",
        "PySide6/Qt/lib/libQt6OpenGLWidgets.so.6",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "vtkmodules/libvtkRenderingOpenGL2.so",
        "ctseg_gui/resources/sample/abdomen_3mm.nii.gz",
        "ctseg_gui/models/tests/anything.json",  # our own package data is never filtered
    ],
)
def test_needed_files_are_kept(dest):
    assert bundle_rules.drop_reason(dest) is None


def test_gpu_build_keeps_cuda():
    assert bundle_rules.drop_reason("torch/lib/libtorch_cuda.so", keep_cuda=True) is None
    assert bundle_rules.drop_reason("nvidia/cudnn/lib/libcudnn.so.9", keep_cuda=True) is None


def test_optional_heavy_packages_return_once_our_code_imports_them(tmp_path):
    package = tmp_path / "ctseg_gui"
    package.mkdir()
    (package / "a.py").write_text("import numpy\n")
    assert "pyvista" in bundle_rules.excluded_modules(tmp_path)
    (package / "b.py").write_text("def f():\n    import pyvista\n")
    assert "pyvista" not in bundle_rules.excluded_modules(tmp_path)
    assert "itk" in bundle_rules.excluded_modules(tmp_path)


def test_rendering_factories_are_always_bundled():
    # Without these VTK has no OpenGL window, no interactor style and no text rendering.
    for name in ("vtkRenderingOpenGL2", "vtkInteractionStyle", "vtkRenderingFreeType"):
        assert name in bundle_rules.VTK_MODULES


def test_fingerprint_changes_with_the_sources(tmp_path, monkeypatch):
    before = package_build.fingerprint()
    assert package_build.fingerprint() == before
    monkeypatch.setenv("CTSEG_PACKAGE_CUDA", "1")
    assert package_build.fingerprint() != before


def test_torch_config_modules_ship_their_source():
    # torch parses these modules' own source at import; without it `import torch.distributed`
    # fails in the frozen app with "could not get source code".
    modes = bundle_rules.module_collection_mode()
    assert modes["torch"] == "pyz"
    for name in ("torch.distributed.config", "torch._dynamo.config", "torch._inductor.config"):
        assert modes[name] == "pyz+py"
