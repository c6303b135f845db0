"""Build the one-folder app with PyInstaller, slim it, and pack it into an archive.

Usage: ``python packaging/build.py [--force] [--no-archive] [--format zst|xz|gz]``
(``make package`` runs it with the project's virtual environment).

A build is reused when nothing that goes into it changed: the fingerprint covers the package
sources, resources, model catalog, the packaging files and the installed distributions' versions.
The numbers of each run (build time, sizes) are printed and saved to ``build/package-report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
APP_DIR = DIST / "ctseg-gui"
WORK = ROOT / "build" / "pyinstaller"
STAMP = ROOT / "build" / "ctseg-gui.stamp"
REPORT = ROOT / "build" / "package-report.json"
INPUTS = ["ctseg_gui", "app", "resources", "models", "packaging"]


def executable() -> Path:
    """Path of the frozen app's executable inside ``dist/``."""
    name = "ctseg-gui.exe" if sys.platform == "win32" else "ctseg-gui"
    return APP_DIR / name


def fingerprint() -> str:
    """Hash of everything the bundle is made from."""
    digest = hashlib.sha256()
    for top in INPUTS:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    digest.update("\n".join(versions).encode())
    digest.update(os.environ.get("CTSEG_PACKAGE_CUDA", "0").encode())
    return digest.hexdigest()


def run_pyinstaller() -> float:
    """Run PyInstaller on the spec; returns the wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level=WARN",
            "--distpath",
            str(DIST),
            "--workpath",
            str(WORK),
            str(ROOT / "packaging" / "ctseg-gui.spec"),
        ],
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _segments_aligned(path: Path) -> bool:
    """True when every PT_LOAD segment of a 64-bit little-endian ELF has offset = address (mod align).

    ``strip`` rewrites the file layout; on libraries that patchelf already edited (auditwheel's
    vendored ``*.libs``), the result can break this rule and the loader refuses the file ("ELF load
    command address/offset not page-aligned"), so every stripped file is checked before use.
    """
    with path.open("rb") as handle:
        header = handle.read(64)
        if header[4] != 2 or header[5] != 1:
            return False  # not ELF64 little-endian: do not touch
        (phoff,) = struct.unpack_from("<Q", header, 0x20)
        entsize, count = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(entsize * count)
    for index in range(count):
        kind, _flags, offset, vaddr, _paddr, _filesz, _memsz, align = struct.unpack_from(
            "<IIQQQQQQ", table, index * entsize
        )
        if kind == 1 and align > 1 and (vaddr - offset) % max(align, 4096):
            return False
    return True


def strip_binaries(folder: Path) -> int:
    """``strip --strip-unneeded`` the shared libraries; returns the bytes saved.

    PyInstaller's own strip option uses ``-S`` (debug sections only), which saves almost nothing on
    these wheels; dropping the static symbol tables takes ~90 MB off libtorch_cpu and a third off
    the VTK libraries. The dynamic symbol tables stay, so loading and backtraces still work.
    Libraries vendored by auditwheel (``*.libs`` folders, patched by patchelf), files with a FIPS
    ``.hmac``/``.chk`` checksum, and any file whose stripped copy fails the segment check are kept
    as they are.
    """
    if sys.platform != "linux" or shutil.which("strip") is None:
        return 0
    saved = 0
    for path in folder.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.parent == folder:
            continue  # the executable carries its archive after the ELF image: never strip it
        if ".so" not in path.name or any(part.endswith(".libs") for part in path.parts):
            continue
        if path.with_name(path.name + ".hmac").exists() or path.with_suffix(".chk").exists():
            continue
        if not _is_elf(path) or not _segments_aligned(path):
            continue
        stripped = path.with_name(path.name + ".stripped")
        result = subprocess.run(
            ["strip", "--strip-unneeded", "-o", str(stripped), str(path)], capture_output=True
        )
        if result.returncode == 0 and _segments_aligned(stripped):
            saved += path.stat().st_size - stripped.stat().st_size
            shutil.copymode(path, stripped)
            stripped.replace(path)
        else:
            stripped.unlink(missing_ok=True)
    return saved


def link_duplicates(folder: Path) -> int:
    """Replace byte-identical copies of a library by relative symlinks; returns bytes saved.

    Wheels vendor the same library more than once (e.g. libgomp, libz, libstdc++ in several
    ``*.libs`` folders) and the binary analysis collects each copy.
    """
    if sys.platform == "win32":
        return 0
    by_key: dict[tuple[int, str], Path] = {}
    saved = 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or ".so" not in path.name:
            continue
        size = path.stat().st_size
        if size < 64 * 1024:
            continue
        key = (size, hashlib.sha256(path.read_bytes()).hexdigest())
        first = by_key.setdefault(key, path)
        if first is not path:
            path.unlink()
            path.symlink_to(os.path.relpath(first, path.parent))
            saved += size
    return saved


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (symlinks count as nothing)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def archive_path(fmt: str) -> Path:
    from ctseg_gui import __version__

    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, "os")
    return DIST / f"ctseg-gui-{__version__}-{system}-{platform.machine().lower()}.tar.{fmt}"


def make_archive(fmt: str) -> tuple[Path, float]:
    """Pack ``dist/ctseg-gui`` with the system tar (multi-threaded compressors)."""
    target = archive_path(fmt)
    # Measured on this bundle (1.23 GB, 2 busy cores): zstd -9 --long 315 MB in 30 s, gzip -6
    # 380 MB in 73 s; xz -6 is ~15% smaller than zstd but took over 15 minutes. `tar xf` unpacks
    # all three (GNU tar >= 1.31 for .zst); the 128 MB window needs no extra decompressor flags.
    compressor = {
        "zst": "zstd -T0 -9 --long=27",
        "xz": "xz -T0 -6",
        "gz": "gzip -6",
    }[fmt]
    start = time.perf_counter()
    tmp = target.with_suffix(target.suffix + ".part")
    subprocess.run(
        ["tar", "-I", compressor, "-cf", str(tmp), "-C", str(DIST), APP_DIR.name], check=True
    )
    tmp.replace(target)
    return target, time.perf_counter() - start


def ensure_built(force: bool = False) -> dict:
    """Build unless an up-to-date bundle exists; returns the build part of the report."""
    sys.path.insert(0, str(ROOT))
    wanted = fingerprint()
    if (
        not force
        and executable().exists()
        and STAMP.exists()
        and STAMP.read_text().strip() == wanted
    ):
        print(f"ctseg package: reusing {APP_DIR} (inputs unchanged)")
        return {"reused": True}
    STAMP.unlink(missing_ok=True)
    build_s = run_pyinstaller()
    start = time.perf_counter()
    stripped = strip_binaries(APP_DIR)
    linked = link_duplicates(APP_DIR)
    post_s = time.perf_counter() - start
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    STAMP.write_text(wanted)
    return {
        "reused": False,
        "pyinstaller_s": round(build_s, 1),
        "strip_and_dedupe_s": round(post_s, 1),
        "stripped_bytes": stripped,
        "deduplicated_bytes": linked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--no-archive", action="store_true", help="skip the compressed archive")
    parser.add_argument("--format", choices=["zst", "xz", "gz"], default="zst")
    args = parser.parse_args(argv)

    report = ensure_built(args.force)
    report["unpacked_bytes"] = folder_size(APP_DIR)
    if not args.no_archive:
        target = archive_path(args.format)
        if report["reused"] and target.exists() and target.stat().st_mtime > STAMP.stat().st_mtime:
            print(f"ctseg package: reusing {target.name}")
        else:
            target, seconds = make_archive(args.format)
            report["archive_s"] = round(seconds, 1)
        report["archive"] = str(target.relative_to(ROOT))
        report["archive_bytes"] = target.stat().st_size
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    mb = 1024 * 1024
    print(f"ctseg package: {executable().relative_to(ROOT)}")
    for key, value in report.items():
        shown = f"{value / mb:.1f} MiB ({value} bytes)" if key.endswith("_bytes") else value
        print(f"  {key}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
