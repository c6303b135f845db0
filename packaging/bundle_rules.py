"""What goes into the frozen app and what is left out.

Shared by the PyInstaller spec (``ctseg-gui.spec``), the build script and the tests, so the rules
live in one place and can be tested without building. Paths are the destinations inside the bundle
(relative to its ``_internal`` folder), always with ``/`` separators.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

# VTK modules that rendering needs although no code names them: VTK registers its OpenGL
# implementations, interactor styles and font rendering through object factories when these modules
# are imported. Everything our code imports (vtkmodules.vtkXxx) is found by the analysis itself, and
# their dependencies follow through PyInstaller's vtkmodules hooks; the rest of the 550 MB
# vtkmodules folder (readers for dozens of formats, parallel, VR, charts, VTK-m, web) stays out.
VTK_MODULES = [
    "vtkCommonCore",
    "vtkRenderingCore",
    "vtkRenderingOpenGL2",
    "vtkRenderingUI",
    "vtkRenderingFreeType",
    "vtkRenderingVolumeOpenGL2",
    "vtkInteractionStyle",
    "vtkImagingCore",
    "vtkFiltersCore",
]

# Qt modules the app uses; PySide6-Essentials ships more (QML, Quick, Designer, ...). The Qt
# OpenGL libraries themselves stay (libQt6OpenGL, libQt6OpenGLWidgets, for VTK's widget); only
# PySide6's Python binding of QtOpenGL (8.5 MB of QOpenGLFunctions wrappers) is left out: no code
# calls OpenGL through Qt, and PySide6.QtOpenGLWidgets imports without it.
QT_MODULES = ["QtCore", "QtGui", "QtWidgets", "QtOpenGLWidgets", "QtSvg"]

# torch's hook ships every torch module twice, compiled in the PYZ and as .py source (44 MB), so
# code that reads sources works. Eager inference reads few: keep sources where scripting a network
# reads them (torch.nn's functional/modules, torch.jit itself), where torch scripts functions at
# import time (torch.distributed.optim), and for torch's config modules, whose own source torch
# parses at import (`install_config_module`; found by `module_collection_mode`).
_MODULE_COLLECTION_MODE = {
    "torch": "pyz",
    "torch.nn": "pyz+py",
    "torch.jit": "pyz+py",
    "torch.functional": "pyz+py",
    "torch._jit_internal": "pyz+py",
    "torch.distributed.optim": "pyz+py",
}


def module_collection_mode() -> dict[str, str]:
    """PyInstaller's per-package collection modes, torch's config modules included."""
    import importlib.util

    modes = dict(_MODULE_COLLECTION_MODE)
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return modes
    root = Path(next(iter(spec.submodule_search_locations)))
    for path in root.rglob("*.py"):
        if path.name == "_config_module.py" or "install_config_module(" not in path.read_text(
            encoding="utf-8", errors="replace"
        ):
            continue
        module = ".".join(("torch", *path.relative_to(root).with_suffix("").parts))
        modes[module] = "pyz+py"
    return modes


# Never imported by the app, or only reachable through optional imports (monai's optional_import,
# vtk's Qt-binding probing) that degrade gracefully when the module is missing.
EXCLUDED_MODULES = [
    # other Qt bindings probed by vtkmodules.qt and superqt/qtpy
    "PyQt5",
    "PyQt6",
    "PySide2",
    # unused PySide6 modules (Essentials wheel)
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuickWidgets",
    "PySide6.QtQuickControls2",
    "PySide6.QtQuickTest",
    "PySide6.QtDesigner",
    "PySide6.QtUiTools",
    "PySide6.QtHelp",
    "PySide6.QtNetwork",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtPrintSupport",
    "PySide6.QtConcurrent",
    "PySide6.QtDBus",
    "PySide6.QtXml",
    "PySide6.QtOpenGL",
    # the `vtk` shim and vtkmodules.all import every VTK module; we import vtkmodules.* directly
    "vtk",
    "vtkmodules.all",
    "vtkmodules.web",
    "vtkmodules.gtk",
    "vtkmodules.tk",
    "vtkmodules.wx",
    "vtkmodules.test",
    "vtkmodules.generate_pyi",
    # itk (1.5 GB installed) is only an optional reader for monai; we read images with SimpleITK
    "itk",
    # GUI toolkits, notebooks, test runners and logging back-ends monai probes for
    "tkinter",
    "_tkinter",
    "IPython",
    "ipykernel",
    "ipywidgets",
    "jupyter_client",
    "notebook",
    "pytest",
    "_pytest",
    "PyInstaller",
    "tensorboard",
    "tensorboardX",
    "torch.utils.tensorboard",
    "mlflow",
    "clearml",
    "wandb",
    # Pillow's AVIF codec (4.7 MB of libavif); we never read or write AVIF
    "PIL._avif",
    "PIL.AvifImagePlugin",
    # Pixel data is decoded by GDCM (SimpleITK); pydicom only reads headers, so its optional
    # JPEG plugins are not needed
    "pylibjpeg",
    "openjpeg",
    "libjpeg",
    # MATLAB/Matrix Market/WAV readers: only nibabel's SPM .mat and torch datapipes use them
    "scipy.io",
]

# Heavy optional packages left out unless our own code imports them (checked at build time, so a
# new `import pyvista` in ctseg_gui brings pyvista back without anyone editing this file).
EXCLUDED_UNLESS_IMPORTED = ["pyvista", "matplotlib"]

_CUDA_LIB = re.compile(
    r"(^|/)(libcu(da|dart|blas|blasLt|fft|rand|solver|sparse|sparseLt|pti|dnn|file|dss)"
    r"|libcudnn|libnccl|libnvrtc|libnvToolsExt|libnvJitLink|libnvshmem|libnvperf|libcusparseLt"
    r"|libtorch_cuda|libc10_cuda|libcaffe2_nvrtc)[^/]*$"
)

# (pattern, reason) pairs, first match wins.
_DROP_RULES = [
    # torch/bin holds C++ test programs, except torch_shm_manager, which torch starts to share
    # tensors between processes (monai's data loading needs it).
    (
        re.compile(r"^torch/(test|include|share)/|^torch/bin/(?!torch_shm_manager$)"),
        "torch C++ tests, headers and CMake files",
    ),
    (
        re.compile(r"^torch/lib/lib(jitbackend_test|torchbind_test|backend_with_compiler)"),
        "torch test libraries",
    ),
    (re.compile(r"^torch/lib/libaoti_custom_ops"), "torch test libraries"),
    (re.compile(r"(^|/)tests?/"), "test folders"),
    (re.compile(r"^PySide6/Qt/(qml|metatypes|libexec)/"), "Qt QML, metatypes and tools"),
    (
        re.compile(
            r"^PySide6/Qt/lib/libQt6(Quick|Qml|WebEngine|Designer|Pdf|Lottie|Labs|Test|Sql"
            r"|UiTools|Help|VirtualKeyboard|WaylandCompositor|WaylandEglCompositor|WlShell)"
        ),
        "unused Qt libraries",
    ),
    (
        re.compile(
            r"^PySide6/Qt/plugins/(designer|egldeviceintegrations|generic|networkinformation"
            r"|qmltooling|sqldrivers|tls|printsupport|vectorimageformats"
            r"|wayland-graphics-integration-server)/"
        ),
        "unused Qt plugins",
    ),
    (
        re.compile(
            r"^PySide6/Qt/plugins/platforms/libq(eglfs|linuxfb|vnc|minimalegl|vkkhrdisplay)"
        ),
        "Qt platforms for embedded devices",
    ),
    # Screenshots are PNG (built into QtGui) and icons SVG/ICO; no other image formats are read.
    (
        re.compile(r"^PySide6/Qt/plugins/imageformats/libq(gif|icns|jpeg|tga|tiff|wbmp|webp)\."),
        "unused Qt image formats",
    ),
    # The UI is English and installs no QTranslator: Qt's own translations are never loaded.
    (re.compile(r"^PySide6/Qt/translations/"), "Qt translations"),
    # The GTK theme plugin only works against the system's GTK; its collected half of GTK's
    # libraries (cairo, pango, atk, ...) is pruned with it by `orphaned_libraries`.
    (re.compile(r"^PySide6/Qt/plugins/platformthemes/libqgtk3"), "GTK platform theme"),
    (re.compile(r"^vtkmodules/libviskores"), "VTK-m accelerators"),
    (re.compile(r"\.(h|hpp|cuh|cmake|lib|a|pyi)$"), "headers and static libraries"),
]


def drop_reason(dest: str, keep_cuda: bool = False) -> str | None:
    """Why a collected file is left out of the bundle, or None to keep it.

    Parameters
    ----------
    dest : str
        Destination path inside the bundle, ``/``-separated.
    keep_cuda : bool
        True for the GPU build: keep the CUDA libraries.
    """
    if dest.startswith("ctseg_gui/"):
        return None  # our package data is always shipped whole
    if not keep_cuda and (_CUDA_LIB.search(dest) or dest.startswith("nvidia/")):
        return "CUDA libraries (CPU build)"
    for pattern, reason in _DROP_RULES:
        if pattern.search(dest):
            return reason
    return None


def excluded_modules(source_root: Path) -> list[str]:
    """Modules to exclude for this source tree: the fixed list plus unused optional packages."""
    text = "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in sorted((source_root / "ctseg_gui").rglob("*.py"))
    )
    unused = [
        name
        for name in EXCLUDED_UNLESS_IMPORTED
        if not re.search(rf"^\s*(import|from)\s+{name}\b", text, re.MULTILINE)
    ]
    return EXCLUDED_MODULES + unused


def _needed(path: str, cache: dict[str, list[str]]) -> list[str]:
    """DT_NEEDED names of an ELF file (empty when unreadable or not ELF)."""
    if path not in cache:
        result = subprocess.run(
            ["readelf", "-d", "--wide", path], capture_output=True, text=True, check=False
        )
        cache[path] = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", result.stdout)
    return cache[path]


def orphaned_libraries(
    kept: Iterable[tuple[str, str, str]], dropped: Iterable[tuple[str, str, str]]
) -> set[str]:
    """Libraries that only dropped files needed.

    PyInstaller puts the system libraries it collects as dependencies at the top of the bundle,
    and Qt's own in ``PySide6/Qt/lib``. When a file is dropped (the GTK theme plugin, the TLS and
    network-information plugins), the libraries it alone pulled in are useless. Returns the
    destinations of those libraries: reachable through DT_NEEDED from ``dropped`` but not from
    ``kept``. Linux only (uses ``readelf``); elsewhere returns nothing.
    """
    if shutil.which("readelf") is None:
        return set()
    kept = list(kept)
    top = {
        dest.rsplit("/", 1)[-1]: src
        for dest, src, _kind in kept
        if "/" not in dest or dest.startswith("PySide6/Qt/lib/")
    }
    cache: dict[str, list[str]] = {}

    def closure(roots: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            for name in _needed(todo.pop(), cache):
                if name in top and name not in seen:
                    seen.add(name)
                    todo.append(top[name])
        return seen

    from_dropped = closure(src for _dest, src, _kind in dropped)
    if not from_dropped:
        return set()
    roots = [src for dest, src, _kind in kept if dest.rsplit("/", 1)[-1] not in from_dropped]
    orphans = from_dropped - closure(roots)
    return {dest for dest, _src, _kind in kept if dest.rsplit("/", 1)[-1] in orphans}
