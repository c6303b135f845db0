"""Installed models: install from a folder or .zip (offline), download with resume, verify, remove.

Models live under ``<user data dir>/models/<id>/`` (platformdirs; ``CTSEG_DATA_DIR`` overrides the
data dir, which tests always set). Each installed folder is a MONAI bundle (``configs/`` +
``models/``) plus ``ctseg-install.json`` recording where it came from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.settings import user_data_dir
from ctseg_gui.inference.errors import BundleError, ModelNotFoundError

INSTALL_RECORD = "ctseg-install.json"


def models_dir() -> Path:
    """Where installed bundles live."""
    return user_data_dir() / "models"


@dataclass
class InstalledModel:
    """An installed bundle folder and its install record."""

    model_id: str
    path: Path
    record: dict

    @property
    def version(self) -> str:
        return str(self.record.get("version", "unknown"))


def installed_path(model_id: str) -> Path | None:
    """Folder of an installed model, or None."""
    folder = models_dir() / model_id
    return folder if (folder / INSTALL_RECORD).is_file() else None


def list_installed() -> list[InstalledModel]:
    """All installed models, by id."""
    found = []
    root = models_dir()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            record_file = folder / INSTALL_RECORD
            if record_file.is_file():
                try:
                    record = json.loads(record_file.read_text())
                except ValueError:
                    record = {"damaged": True}
                found.append(InstalledModel(folder.name, folder, record))
    return found


def remove(model_id: str) -> Path:
    """Delete an installed model; returns the folder removed."""
    folder = installed_path(model_id)
    if folder is None:
        raise ModelNotFoundError(f"model {model_id} is not installed")
    shutil.rmtree(folder)
    return folder


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file (the model zoo publishes MD5 sums)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(model_id: str) -> list[str]:
    """Problems found in an installed model (empty when it is usable)."""
    folder = installed_path(model_id)
    if folder is None:
        return [f"model {model_id} is not installed"]
    return _check_bundle(folder, model_id)


def _manifest(model_id: str | None):
    if not model_id:
        return None
    from ctseg_gui.inference.catalog import load_catalog

    return load_catalog().get(model_id)


def _check_bundle(folder: Path, model_id: str | None) -> list[str]:
    problems = []
    configs = folder / "configs"
    config = next(
        (configs / n for n in ("inference.json", "inference.yaml") if (configs / n).is_file()),
        None,
    )
    if config is None:
        problems.append(f"{configs / 'inference.json'}: missing")
    elif config.suffix == ".json":
        try:
            json.loads(config.read_text())
        except ValueError as error:
            problems.append(f"{config}: not valid JSON ({error})")
    weights = [p for p in (folder / "models").glob("*") if p.suffix in (".pt", ".ts", ".pth")]
    if not weights:
        problems.append(f"{folder / 'models'}: no weights (model.pt or model.ts)")
    manifest = _manifest(model_id)
    for entry in manifest.files if manifest else []:
        path = folder / entry["path"]
        expected = str(entry.get("md5", "unknown")).lower()
        if not path.is_file():
            if entry.get("required", True):
                problems.append(f"{path}: missing")
        elif expected != "unknown" and md5sum(path) != expected:
            problems.append(f"{path}: MD5 {md5sum(path)} differs from the published {expected}")
    return problems


def _bundle_root_in(folder: Path) -> Path:
    """The bundle folder inside an extracted archive (zips usually hold one top folder)."""
    if (folder / "configs").is_dir():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("__MACOSX")]
    if len(children) == 1 and (children[0] / "configs").is_dir():
        return children[0]
    raise BundleError("no MONAI bundle inside (expected configs/inference.json)", folder)


def _write_recipe_bundle(manifest, weights: Path, target: Path) -> None:
    """Lay out a recipe model (weights + manifest config) as a bundle folder."""
    (target / "configs").mkdir(parents=True)
    (target / "models").mkdir()
    (target / "configs" / "inference.json").write_text(json.dumps(manifest.config, indent=2))
    metadata = {"version": manifest.version, "name": manifest.display_name, "task": manifest.task}
    metadata["network_data_format"] = {
        "outputs": {"pred": {"channel_def": {str(k): v for k, v in manifest.labels.items()}}}
    }
    (target / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2))
    shutil.copy2(weights, target / "models" / "model.pt")


def install(
    source: str | Path, model_id: str | None = None, *, force: bool = False
) -> InstalledModel:
    """Install a bundle from a folder or .zip (or, for recipe models, a weights file).

    Parameters
    ----------
    source
        Bundle folder, bundle .zip as published on the model zoo, or a ``.pt`` weights file for
        a catalog model whose manifest carries the config.
    model_id
        Id to install under; defaults to the folder / archive name without a ``_vX.Y.Z`` suffix.
    force
        Replace an installed model of the same id.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise CtsegError("no such file or folder", source)
    if model_id is None:
        model_id = (
            source.name.removesuffix(".zip").split("_v")[0]
            if source.suffix == ".zip"
            else source.name
        )
        model_id = model_id.split("_v0")[0]
    manifest = _manifest(model_id)
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / model_id
    if target.exists() and not force:
        raise CtsegError(f"model {model_id} is already installed (use --force to replace)", target)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}-", dir=root))
    try:
        bundle = staging / "bundle"
        if source.is_dir():
            shutil.copytree(_bundle_root_in(source), bundle)
        elif (
            manifest is not None and manifest.kind == "recipe" and source.suffix in (".pt", ".pth")
        ):
            # checked before the zip test: torch.save writes zip files too
            _write_recipe_bundle(manifest, source, bundle)
        elif zipfile.is_zipfile(source):
            extracted = staging / "extracted"
            with zipfile.ZipFile(source) as archive:
                _safe_extract(archive, extracted, source)
            shutil.move(str(_bundle_root_in(extracted)), bundle)
        else:
            raise BundleError("not a bundle folder, bundle .zip or weights file", source)
        problems = _check_bundle(bundle, model_id)
        if problems:
            raise BundleError("cannot install: " + "; ".join(problems), source)
        record = {
            "id": model_id,
            "source": str(source),
            "installed": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "version": _bundle_version(bundle) or (manifest.version if manifest else "unknown"),
        }
        (bundle / INSTALL_RECORD).write_text(json.dumps(record, indent=1))
        if target.exists():
            shutil.rmtree(target)
        bundle.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return InstalledModel(model_id, target, record)


def _safe_extract(archive: zipfile.ZipFile, target: Path, source: Path) -> None:
    for member in archive.namelist():
        resolved = (target / member).resolve()
        if not str(resolved).startswith(str(target.resolve())):
            raise BundleError(f"archive entry {member!r} points outside the archive", source)
    try:
        archive.extractall(target)
    except (zipfile.BadZipFile, OSError) as error:
        raise BundleError(f"damaged archive ({error})", source) from error


def _bundle_version(bundle: Path) -> str | None:
    try:
        return str(json.loads((bundle / "configs" / "metadata.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def download(
    url: str,
    target: Path,
    progress: Callable[[int, int | None], None] | None = None,
    chunk: int = 1 << 16,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``target``, resuming a partial ``target.part`` with an HTTP Range request.

    ``progress(bytes_done, bytes_total_or_None)`` is called as data arrives. A server that ignores
    the Range header (status 200) makes the download start again from zero.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ctseg-gui"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = getattr(response, "status", 200)
            if status == 206:
                total = _total_from_content_range(response.headers.get("Content-Range"))
                mode = "ab"
            else:
                done, mode = 0, "wb"
                length = response.headers.get("Content-Length")
                total = int(length) if length else None
            with open(partial, mode) as handle:
                while block := response.read(chunk):
                    handle.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
    except OSError as error:
        if getattr(error, "code", None) == 416 and done:  # range past the end: already complete
            partial.rename(target)
            return target
        raise CtsegError(f"download failed ({error}); run again to resume", url) from error
    if total is not None and done != total:
        raise CtsegError(f"download stopped at {done} of {total} bytes; run again to resume", url)
    partial.rename(target)
    return target


def _total_from_content_range(value: str | None) -> int | None:
    if value and "/" in value and not value.endswith("*"):
        return int(value.rsplit("/", 1)[1])
    return None


def download_and_install(
    model_id: str,
    progress: Callable[[int, int | None], None] | None = None,
    url: str | None = None,
) -> InstalledModel:
    """Download a catalog model's bundle archive (resumable) and install it."""
    manifest = _manifest(model_id)
    if manifest is None and url is None:
        raise ModelNotFoundError(f"unknown model {model_id!r}")
    candidates = [url] if url else [s["url"] for s in manifest.sources if s.get("archive", True)]
    errors = []
    for candidate in candidates:
        name = candidate.rstrip("/").rsplit("/", 1)[-1] or f"{model_id}.zip"
        target = user_data_dir() / "downloads" / name
        try:
            path = target if target.exists() else download(candidate, target, progress)
        except CtsegError as error:
            errors.append(str(error))
            continue
        return install(path, model_id, force=True)
    raise CtsegError("no source could be downloaded: " + " | ".join(errors), model_id)
