"""Measure start-up to first paint of the frozen app and of the source install, in one run.

Usage: ``python packaging/measure_startup.py [--runs 3] [--json OUT] [IMAGE]``

Each launch gets ``CTSEG_REPORT_FIRST_PAINT=<file>``; the app writes the wall-clock time of its main
window's first paint there (``ctseg_gui/qt/_first_paint.py``). Start-up is that time minus the time
just before the process was started. A private Xvfb server is started unless ``--display`` is given.

"Cold" launches first evict the launched program's files from the page cache with
``posix_fadvise(DONTNEED)`` (the frozen folder; for the source install the virtual environment and
the interpreter's standard library), which needs no root and reads like a first start after boot
for those files. System libraries (libGL, libc) stay cached either way. "Warm" launches follow
directly. The two variants alternate so that machine load hits both alike. Besides wall time, the
CPU time the app had used by its first paint is reported: on a shared machine it is the steadier
number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FROZEN = ROOT / "dist" / "ctseg-gui" / "ctseg-gui"
SOURCE_PY = ROOT / ".venv" / "bin" / "python"
TIMEOUT_S = 120.0


def evict(folders: list[Path]) -> int:
    """Drop the page-cache pages of every file under ``folders``; returns the number of files."""
    count = 0
    for folder in folders:
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    count += 1
                finally:
                    os.close(fd)
    return count


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """Start Xvfb on a free display number; returns the process and ``:N``."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def launch(command: list[str], display: str) -> tuple[float, float]:
    """Start ``command``, wait for its first paint, stop it.

    Returns the wall-clock seconds to first paint and the CPU seconds the process had used by
    then. On a shared machine the wall time carries other users' load; the CPU time does not.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "first_paint"
        env = dict(os.environ, DISPLAY=display, CTSEG_REPORT_FIRST_PAINT=str(report))
        env.pop("QT_QPA_PLATFORM", None)
        start = time.time()
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            while not report.exists():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{command[0]} exited with {proc.returncode} before painting:\n"
                        + proc.stderr.read()[-2000:]
                    )
                if time.time() - start > TIMEOUT_S:
                    raise RuntimeError(f"{command[0]} did not paint within {TIMEOUT_S:.0f} s")
                time.sleep(0.01)
            cpu = cpu_seconds(proc.pid)
            return float(report.read_text()) - start, cpu
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def variants(image: str, frozen: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """name -> (command line, folders to evict for a cold start)."""
    found = {}
    if frozen.exists():
        found["frozen"] = ([str(frozen), image], [frozen.parent])
    if SOURCE_PY.exists():
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        command = [str(SOURCE_PY), "-m", "ctseg_gui.qt.app", image]
        found["source"] = (command, [ROOT / ".venv", ROOT / "ctseg_gui", stdlib])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="CT to open (default: the bundled sample CT)")
    parser.add_argument("--runs", type=int, default=3, help="cold+warm launch pairs per variant")
    parser.add_argument("--frozen", type=Path, default=FROZEN, help="frozen executable")
    parser.add_argument("--display", help="use this X display instead of a private Xvfb")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    image = args.image or str(ROOT / "resources" / "sample" / "abdomen_3mm.nii.gz")
    chosen = variants(image, args.frozen)
    if not chosen:
        print("measure_startup: neither dist/ctseg-gui nor .venv exists", file=sys.stderr)
        return 1
    xvfb, display = (None, args.display) if args.display else start_xvfb()
    kinds = ("cold", "warm", "cold_cpu", "warm_cpu")
    results: dict[str, dict[str, list[float]]] = {n: {k: [] for k in kinds} for n in chosen}
    try:
        for command, _folders in chosen.values():
            launch(command, display)  # untimed: first-ever run builds font and shader caches
        for _ in range(args.runs):
            for name, (command, folders) in chosen.items():
                evict(folders)
                for kind in ("cold", "warm"):
                    wall, cpu = launch(command, display)
                    results[name][kind].append(wall)
                    results[name][f"{kind}_cpu"].append(cpu)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"start-up to first paint, {args.runs} runs each, image {Path(image).name}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load}")
    print(f"{'variant':8} {'kind':8} {'median s':>9}  runs")
    summary = {}
    for name, kinds in results.items():
        for kind, values in kinds.items():
            median = statistics.median(values)
            summary[f"{name}_{kind}_median_s"] = round(median, 3)
            print(f"{name:8} {kind:8} {median:9.2f}  {' '.join(f'{v:.2f}' for v in values)}")
    if "frozen" in results and "source" in results:
        for kind in kinds:
            ratio = summary[f"frozen_{kind}_median_s"] / summary[f"source_{kind}_median_s"]
            summary[f"frozen_over_source_{kind}"] = round(ratio, 3)
            print(f"frozen/source ({kind}): {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
