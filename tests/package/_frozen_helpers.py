"""Helpers for the tests that run the frozen (PyInstaller) app in ``dist/ctseg-gui``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _load(name: str):
    """Import a module of packaging/ (not a package) under a private name."""
    spec = importlib.util.spec_from_file_location(
        f"_ctseg_packaging_{name}", PACKAGING / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


package_build = _load("build")
bundle_rules = _load("bundle_rules")

SOURCE_BIN = Path(sys.executable).parent


def frozen_app_or_reason() -> tuple[Path | None, str]:
    app = Path(os.environ.get("CTSEG_FROZEN_APP") or package_build.executable())
    if not app.exists():
        return None, f"frozen app not built ({app} missing): run `make package`"
    if "CTSEG_FROZEN_APP" not in os.environ:
        stamp = package_build.STAMP
        if not stamp.exists() or stamp.read_text().strip() != package_build.fingerprint():
            return None, "frozen app is older than the sources: run `make package`"
    return app, ""


def clean_env(**extra: str) -> dict[str, str]:
    """An environment with no trace of the virtual environment or the source tree.

    The frozen app must not need them: no PYTHONPATH, no VIRTUAL_ENV, PATH without .venv/bin.
    """
    keep = ("HOME", "DISPLAY", "XAUTHORITY", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.update(extra)
    return env


def run_app(app: Path, *args: str, cwd: Path, timeout: float = 300, **env: str):
    """Run the frozen app from ``cwd`` (never the repository) with a clean environment."""
    return subprocess.run(
        [str(app), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_source(command: str, *args: str, cwd: Path, timeout: float = 300):
    """Run a console script of the source install (``.venv/bin/<command>``)."""
    return subprocess.run(
        [str(SOURCE_BIN / command), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
