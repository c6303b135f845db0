"""Installed models: install from a folder or .zip (offline), download with resume, verify, remove.

Models live under ``<user data dir>/models/<id>/`` (platformdirs; ``CTSEG_DATA_DIR`` overrides the
data dir, which tests always set). Each installed folder is a MONAI bundle (``configs/`` +
``models/``) plus ``ctseg-install.json`` recording where it came from.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.settings import user_data_dir
from ctseg_gui.inference.errors import BundleError, JobCancelled, ModelNotFoundError
from ctseg_gui.inference.trust import (
    BundleReview,
    UntrustedBundleError,
    check_or_accept,
    parsed_config_files,
    review_bundle,
)

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


def verify(model_id: str, checked: list[str] | None = None) -> list[str]:
    """Problems found in an installed model (empty when it is usable).

    Parameters
    ----------
    model_id
        Installed model.
    checked
        When given, receives one line per check that passed (for showing what was verified).
    """
    folder = installed_path(model_id)
    if folder is None:
        return [f"model {model_id} is not installed"]
    checked = [] if checked is None else checked
    problems = _check_bundle(folder, model_id, checked=checked)
    review = untrusted_review(folder)
    if review is not None:
        problems.append(f"not trusted: {review.summary()}")
    elif not problems:
        checked.append("configs and scripts: nothing runs that is not known to be safe or trusted")
    return problems


def untrusted_review(folder: Path) -> BundleReview | None:
    """The trust review of an installed bundle that needs trust it does not have, else None."""
    try:
        review = review_bundle(folder, parsed_config_files(folder))
    except BundleError:
        return None  # unreadable configs are reported by the file checks
    return None if review.trusted else review


def _manifest(model_id: str | None):
    if not model_id:
        return None
    from ctseg_gui.inference.catalog import load_catalog

    return load_catalog().get(model_id)


def _check_bundle(
    folder: Path, model_id: str | None, *, relative: bool = False, checked: list | None = None
) -> list[str]:
    """Problems of a bundle folder; ``relative`` names files inside it (for staging copies)."""
    problems = []
    checked = [] if checked is None else checked

    def name(path: Path) -> Path:
        return path.relative_to(folder) if relative else path

    configs = folder / "configs"
    config = next(
        (configs / n for n in ("inference.json", "inference.yaml") if (configs / n).is_file()),
        None,
    )
    if config is None:
        problems.append(f"{name(configs / 'inference.json')}: missing")
    elif config.suffix == ".json":
        try:
            json.loads(config.read_text())
            checked.append(f"{config.relative_to(folder)}: valid JSON")
        except ValueError as error:
            problems.append(f"{name(config)}: not valid JSON ({error})")
    weights = [p for p in (folder / "models").glob("*") if p.suffix in (".pt", ".ts", ".pth")]
    if not weights:
        problems.append(f"{name(folder / 'models')}: no weights (model.pt or model.ts)")
    for path in weights:
        checked.append(f"{path.relative_to(folder)}: present ({path.stat().st_size:,} bytes)")
    manifest = _manifest(model_id)
    version = _bundle_version(folder) or (manifest.version if manifest else None)
    expected_md5 = {
        entry["path"]: published_md5(entry, manifest.version, version)
        for entry in (manifest.files if manifest else [])
    }
    if manifest and not any(expected_md5.values()):
        checked.append(f"no published MD5 checksums for version {version} in the catalog")
    for entry in manifest.files if manifest else []:
        path = folder / entry["path"]
        expected = expected_md5[entry["path"]]
        if not path.is_file():
            if entry.get("required", True):
                problems.append(f"{name(path)}: missing")
        elif expected:
            actual = md5sum(path)
            if actual != expected:
                problems.append(
                    f"{name(path)}: MD5 {actual} differs from the published {expected} "
                    f"(model zoo, version {version})"
                )
            else:
                checked.append(f"{entry['path']}: MD5 matches the published {expected}")
    return problems


def published_md5(entry: dict, catalog_version: str, version: str | None) -> str | None:
    """The model zoo's MD5 of a manifest file for a bundle ``version``, or None if unpublished.

    ``md5`` holds the hash for the catalog's version of the bundle and ``md5_by_version`` those
    published for other versions; a bundle of a version without a published hash is not checked
    (weights change between versions, so another version's hash would refuse a good file).
    """
    by_version = entry.get("md5_by_version") or {}
    expected = str(entry.get("md5", "unknown")) if version == catalog_version else None
    if version in by_version:
        expected = str(by_version[version])
    if expected is None or expected.lower() == "unknown":
        return None
    return expected.lower()


def default_model_id(source: str | Path) -> str:
    """The id a source installs under: its name without ``.zip`` / ``.pt`` and ``_vX.Y.Z``."""
    source = Path(source)
    name = source.name
    if source.suffix in (".zip", ".pt", ".pth") and not source.is_dir():
        name = source.stem
    return re.sub(r"_v\d+(\.\d+)*$", "", name)


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
    source: str | Path, model_id: str | None = None, *, force: bool = False, trust: bool = False
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
    trust
        Accept a bundle whose configs or scripts would run code that is not known to be safe
        (recorded by checksum, see :mod:`~ctseg_gui.inference.trust`); without it such a bundle
        is refused with :class:`~ctseg_gui.inference.trust.UntrustedBundleError` unless the user
        trusted these exact configs and scripts before.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise CtsegError("no such file or folder", source)
    if model_id is None:
        model_id = default_model_id(source)
    manifest = _manifest(model_id)
    is_weights = source.is_file() and source.suffix in (".pt", ".pth")
    if is_weights and (manifest is None or manifest.kind != "recipe"):
        recipes = ", ".join(m.id for m in _recipe_manifests())
        raise BundleError(
            f"a weights file alone installs only as a model published as weights plus a recipe "
            f"({recipes}), not as {model_id!r}; for a bundle choose its folder or .zip",
            source,
        )
    if source.is_file() and not is_weights and not zipfile.is_zipfile(source):
        problem = (
            "damaged or incomplete .zip archive (no zip directory found)"
            if source.suffix == ".zip"
            else "not a bundle folder, bundle .zip or weights file"
        )
        raise BundleError(problem, source)
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
        elif is_weights:  # checked before the zip test: torch.save writes zip files too
            _write_recipe_bundle(manifest, source, bundle)
        else:
            extracted = staging / "extracted"
            try:
                with zipfile.ZipFile(source) as archive:
                    _safe_extract(archive, extracted, source)
            except zipfile.BadZipFile as error:
                raise BundleError(f"damaged archive ({error})", source) from error
            try:
                root_in = _bundle_root_in(extracted)
            except BundleError:
                raise BundleError(
                    "no MONAI bundle inside the archive (expected configs/inference.json)", source
                ) from None
            shutil.move(str(root_in), bundle)
        problems = _check_bundle(bundle, model_id, relative=True)
        if problems:
            raise BundleError("cannot install: " + "; ".join(problems), source)
        check_or_accept(
            bundle, trust=trust, hint="install it with --trust to accept it", shown_as=source
        )
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


def _recipe_manifests() -> list:
    from ctseg_gui.inference.catalog import load_catalog

    return [m for m in load_catalog().values() if m.kind == "recipe"]


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
    cancelled: Callable[[], bool] | None = None,
) -> Path:
    """Download ``url`` to ``target``, resuming a partial ``target.part`` with an HTTP Range request.

    ``progress(bytes_done, bytes_total_or_None)`` is called as data arrives. A server that ignores
    the Range header (status 200) makes the download start again from zero. ``cancelled()`` is
    asked between blocks; when it says True the download stops with :class:`JobCancelled` and the
    partial file stays for the next attempt to resume.
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
                    if cancelled is not None and cancelled():
                        raise JobCancelled(
                            f"download of {url} cancelled at {done:,} bytes; "
                            "download again to resume"
                        )
    except OSError as error:
        if getattr(error, "code", None) == 416 and done:  # range past the end: already complete
            partial.rename(target)
            return target
        resume = "; run again to resume" if partial.exists() and partial.stat().st_size else ""
        raise CtsegError(f"download failed: {network_problem(error)}{resume}", url) from error
    if total is not None and done != total:
        raise CtsegError(f"download stopped at {done} of {total} bytes; run again to resume", url)
    partial.rename(target)
    return target


def network_problem(error: BaseException) -> str:
    """A short reason for a failed download (offline, refused, timed out, HTTP status)."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return f"HTTP {code} {getattr(error, 'reason', '')}".strip()
    reason = getattr(error, "reason", error)
    if isinstance(reason, socket.gaierror):
        return "cannot look up the server's name (no internet connection?)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused by the server"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "the server did not answer in time"
    text = str(getattr(reason, "strerror", None) or reason)
    return text or type(error).__name__


def _total_from_content_range(value: str | None) -> int | None:
    if value and "/" in value and not value.endswith("*"):
        return int(value.rsplit("/", 1)[1])
    return None


def download_urls(model_id: str) -> list[str]:
    """The bundle archive URLs of a catalog model, in the order they are tried."""
    manifest = _manifest(model_id)
    if manifest is None:
        return []
    return [s["url"] for s in manifest.archive_sources]


def download_and_install(
    model_id: str,
    progress: Callable[[int, int | None], None] | None = None,
    url: str | None = None,
    cancelled: Callable[[], bool] | None = None,
    trust: bool = False,
) -> InstalledModel:
    """Download a catalog model's bundle archive (resumable) and install it.

    Each archive source of the manifest is tried in turn; a cancel stops at once (the partial
    file stays for a resumed download). A bundle that needs trust is refused as in :func:`install`
    unless ``trust``. Recipe models (weights published on a web page) cannot be
    downloaded here: the error names the page to get the weights from.
    """
    manifest = _manifest(model_id)
    if manifest is None and url is None:
        raise ModelNotFoundError(f"unknown model {model_id!r}")
    candidates = [url] if url else download_urls(model_id)
    if not candidates:
        pages = ", ".join(s["url"] for s in manifest.sources) or "its publisher"
        raise CtsegError(
            "no bundle archive to download: get the weights from "
            f"{pages} and install the file (ctseg models install {model_id} FILE)",
            model_id,
        )
    errors = []
    for candidate in candidates:
        name = candidate.rstrip("/").rsplit("/", 1)[-1] or f"{model_id}.zip"
        target = user_data_dir() / "downloads" / name
        try:
            path = (
                target
                if target.exists()
                else download(candidate, target, progress, cancelled=cancelled)
            )
        except JobCancelled:
            raise
        except CtsegError as error:
            errors.append((candidate, error.problem))
            continue
        try:
            return install(path, model_id, force=True, trust=trust)
        except UntrustedBundleError:
            raise  # the archive stays: accepting it installs without downloading again
        except BundleError:
            target.unlink(missing_ok=True)  # a bad archive must not be reused by the next try
            raise
    raise CtsegError(_download_failure(errors), model_id)


def _download_failure(errors: list[tuple[str, str]]) -> str:
    """One line for failed downloads; mirrors failing the same way (offline) are counted."""
    problems = {problem for _url, problem in errors}
    if len(problems) == 1:
        url, problem = errors[0]
        mirrors = len(errors) - 1
        also = f" (and {mirrors} mirror{'s' if mirrors > 1 else ''})" if mirrors else ""
        return f"{problem.replace('download failed: ', 'download failed, ', 1)}; tried {url}{also}"
    return "no source could be downloaded: " + " | ".join(f"{u}: {p}" for u, p in errors)
