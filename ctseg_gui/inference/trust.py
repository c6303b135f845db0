"""Bundle trust: a bundle's configs are Python; nothing in them runs before the user agrees.

MONAI bundle configs run code: ``$`` expressions are ``eval``-ed, ``$import`` imports, every
``_target_`` is imported and called, and a bundle's ``scripts/`` package becomes importable. A
bundle from a colleague, a forum or a tampered download could therefore run anything on a
workstation that holds patient data. So before a bundle's configs are parsed:

1. :func:`review_bundle` reads the configs to be parsed (the files themselves, once; the parser
   then gets exactly the content that was reviewed) and lists every expression, import, target and
   script that is not known to be safe (:mod:`._trust_rules` classifies them with ``ast``), with a
   SHA-256 checksum over everything under ``configs/`` and ``scripts/``.
2. A bundle with nothing to report runs without a question (the model zoo's CT bundles and the
   bundles the tests build). Any other bundle must be trusted: :func:`accept` records its checksum
   in ``trusted_bundles.json`` in the user config folder, so a one-byte change to a config or a
   script asks again.
3. :func:`require_trusted` is called by the one place that hands configs to ``ConfigParser``
   (``bundle.read_bundle_configs``) and raises :class:`UntrustedBundleError` otherwise: the CLI
   refuses (``--trust`` accepts), the GUI asks, the compute worker refuses with the message.

Qt-free and MONAI-free: the GUI uses it to show what would run without parsing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctseg_gui.inference import _trust_rules as rules
from ctseg_gui.inference.errors import BundleError

STORE_NAME = "trusted_bundles.json"
_HASHED_FOLDERS = ("configs", "scripts")


@dataclass(frozen=True)
class Finding:
    """One thing a bundle would run that is not known to be safe."""

    file: str  # bundle-relative path
    where: str  # config id (``network_def#spatial_dims``) or "" for scripts
    text: str  # the expression, target or file
    reasons: tuple[str, ...]

    def line(self) -> str:
        """``configs/inference.json network_def#spatial_dims: `$...` (uses os.system)``."""
        where = f" {self.where}" if self.where else ""
        return f"{self.file}{where}: {_clip(self.text)} ({'; '.join(self.reasons)})"


@dataclass
class BundleReview:
    """What :func:`review_bundle` found: checksum, findings and the reviewed config content."""

    root: Path
    checksum: str
    findings: list[Finding] = field(default_factory=list)
    configs: dict[str, Any] = field(default_factory=dict)  # bundle-relative path -> content
    known_safe: list[Finding] = field(default_factory=list)  # runs too, without asking

    @property
    def needs_trust(self) -> bool:
        """Whether anything would run that is not known to be safe."""
        return bool(self.findings)

    @property
    def trusted(self) -> bool:
        """Whether it may run: nothing to report, or the user accepted this exact checksum."""
        return not self.findings or is_trusted(self.checksum)

    def summary(self, limit: int = 3) -> str:
        """One line naming what would run (the first ``limit`` findings)."""
        shown = "; ".join(f.line() for f in self.findings[:limit])
        more = len(self.findings) - limit
        extra = f"; and {more} more" if more > 0 else ""
        return (
            f"the bundle would run code that is not known to be safe: {shown}{extra} "
            f"(bundle sha256 {self.checksum[:16]}…)"
        )


class UntrustedBundleError(BundleError):
    """A bundle needs the user's trust before its configs are parsed; carries the review."""

    def __init__(self, review: BundleReview, hint: str = "") -> None:
        self.review = review
        super().__init__(review.summary() + (f"; {hint}" if hint else ""), review.root)

    def __reduce__(self):  # the worker's messages pickle errors: keep the text
        return (BundleError, (self.problem, self.path))


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(str(text).split())
    return f"`{text if len(text) <= width else text[: width - 1] + '…'}`"


def _bundle_files(root: Path) -> list[Path]:
    files = []
    for name in _HASHED_FOLDERS:
        folder = root / name
        if folder.is_dir():
            for path in folder.rglob("*"):
                parts = path.relative_to(root).parts
                if path.is_file() and "__pycache__" not in parts and path.suffix != ".pyc":
                    files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def bundle_checksum(root: Path, contents: dict[str, bytes] | None = None) -> str:
    """SHA-256 over the names and bytes of every file under ``configs/`` and ``scripts/``."""
    digest = hashlib.sha256()
    for path in _bundle_files(root):
        name = path.relative_to(root).as_posix()
        data = contents[name] if contents and name in contents else path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _load(data: bytes, name: str, root: Path) -> Any:
    try:
        if name.lower().endswith(".json"):
            return json.loads(data)
        import yaml

        return yaml.safe_load(data)  # MONAI reads YAML with a SafeLoader too
    except Exception as error:  # noqa: BLE001 - any syntax error is the file's fault
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BundleError(f"cannot read the config ({reason})", root / name) from error


def _walk(item: Any, where: str):
    """``(config id, key, value)`` for every value of a config (ids as MONAI writes them)."""
    if isinstance(item, dict):
        for key, value in item.items():
            child = f"{where}#{key}" if where else str(key)
            yield child, str(key), value
            yield from _walk(value, child)
    elif isinstance(item, list):
        for number, value in enumerate(item):
            child = f"{where}#{number}" if where else str(number)
            yield child, "", value
            yield from _walk(value, child)


def _imports(configs: dict[str, Any]) -> dict[str, str]:
    """Names bound by the configs' ``$import`` items, and ``@id`` of those items."""
    bound: dict[str, str] = {}
    for content in configs.values():
        for where, _key, value in _walk(content, ""):
            if isinstance(value, str) and value.startswith("$") and "import" in value:
                binding = rules.import_binding(value[1:])
                if binding:
                    bound[binding[0]] = binding[1]
                    bound[f"@{where}"] = binding[1]
    return bound


def _check(configs: dict[str, Any]) -> tuple[list[Finding], list[Finding]]:
    """(not known to be safe, known-safe): every expression, import, target and macro."""
    modules = _imports(configs)
    findings, safe = [], []
    for name, content in configs.items():
        for where, key, value in _walk(content, ""):
            if rules.pickle_switch(key, value) and not str(value).startswith("@"):
                findings.append(Finding(name, where, f"{key}: {value}", ("loads pickled data",)))
                continue
            if not isinstance(value, str):
                continue
            if key == "_mode_" and value == "debug":
                problems = ["runs the Python debugger"]
            elif value.startswith("$"):
                if rules.import_binding(value[1:]) is not None:
                    problems = rules.check_import(value[1:])
                else:
                    problems = rules.check_expression(value[1:], modules)
            elif key == "_target_":
                problems = rules.check_target(value, modules)
            elif value.startswith("%"):
                problems = rules.check_macro(value)
            else:
                continue
            if problems:
                findings.append(Finding(name, where, value, tuple(problems)))
            elif value.startswith("$") or key == "_target_":
                safe.append(Finding(name, where, value, ()))
    return findings, safe


def review_bundle(root: str | Path, config_files: list[Path] | None = None) -> BundleReview:
    """Review the configs that are about to be parsed (default: every config of the bundle).

    Parameters
    ----------
    root
        The bundle folder.
    config_files
        The config files the caller will parse; their reviewed content is in ``configs``.
    """
    root = Path(root)
    if config_files is None:
        config_files = [
            p
            for p in sorted((root / "configs").glob("*"))
            if p.suffix in (".json", ".yaml", ".yml")
        ]
    contents, configs = {}, {}
    for path in config_files:
        name = Path(path).resolve().relative_to(root.resolve()).as_posix()
        try:
            contents[name] = Path(path).read_bytes()
        except OSError as error:
            raise BundleError(f"cannot read the config ({error.strerror})", path) from error
        configs[name] = _load(contents[name], name, root)
    findings, safe = _check(configs)
    for path in _bundle_files(root):
        name = path.relative_to(root).as_posix()
        if name.startswith("scripts/"):
            findings.append(Finding(name, "", name, ("the bundle's own Python code",)))
    return BundleReview(root, bundle_checksum(root, contents), findings, configs, safe)


def _store_path() -> Path:
    from ctseg_gui.core.settings import user_config_dir

    return user_config_dir() / STORE_NAME


def _read_store() -> dict[str, Any]:
    try:
        data = json.loads(_store_path().read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: nothing is trusted (fails closed)
    trusted = data.get("trusted") if isinstance(data, dict) else None
    return trusted if isinstance(trusted, dict) else {}


def is_trusted(checksum: str) -> bool:
    """Whether the user accepted a bundle with this checksum."""
    return checksum in _read_store()


def accept(review: BundleReview) -> None:
    """Record that the user trusts this bundle (its exact configs and scripts)."""
    trusted = _read_store()
    trusted[review.checksum] = {
        "bundle": str(review.root),
        "accepted": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "runs": [f.line() for f in review.findings[:20]],
    }
    path = _store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".trusted-", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        json.dump({"version": 1, "trusted": trusted}, stream, indent=1)
    os.replace(temporary, path)


def parsed_config_files(root: Path) -> list[Path]:
    """The configs the app parses: the inference config and, when present, the metadata."""
    from ctseg_gui.inference.modelref import bundle_config_file

    files = [bundle_config_file(root)]
    if (root / "configs" / "metadata.json").is_file():
        files.append(root / "configs" / "metadata.json")
    return files


def check_or_accept(
    root: Path, *, trust: bool, hint: str, shown_as: Path | None = None
) -> BundleReview:
    """Refuse a bundle that needs trust, or with ``trust`` accept it (the CLI's ``--trust``).

    ``shown_as`` names the bundle in messages and the trust store (e.g. the .zip the user chose
    rather than the folder it was unpacked to).
    """
    review = review_bundle(root, parsed_config_files(root))
    if shown_as is not None:
        review.root = Path(shown_as)
    if not review.trusted:
        if not trust:
            raise UntrustedBundleError(review, hint)
        accept(review)
    return review


def require_trusted(
    root: str | Path, config_files: list[Path] | None = None, *, hint: str = ""
) -> BundleReview:
    """The review of a bundle that may run; :class:`UntrustedBundleError` when it may not."""
    review = review_bundle(root, config_files)
    if not review.trusted:
        raise UntrustedBundleError(review, hint)
    return review


__all__ = [
    "BundleReview",
    "Finding",
    "UntrustedBundleError",
    "accept",
    "bundle_checksum",
    "check_or_accept",
    "is_trusted",
    "parsed_config_files",
    "require_trusted",
    "review_bundle",
]
