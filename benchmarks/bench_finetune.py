"""Benchmark: fine-tuning a spleen-format bundle on the real abdomen CT, on the CPU.

Evidence for the training panel, measured with ``ctseg train`` / ``ctseg evaluate`` as a user runs
them (each a subprocess):

1. Fine-tune: a spleen_ct_segmentation-style bundle (tests/bundles.py: the seed card's UNet 16-256,
   fixed-seed weights, resampling to ``--spacing`` mm) trained on the abdomen CT with its reference
   labels (spleen = 1; the other 103 structures are background). Reports the training loss over
   the first and last tenth of the run, the validation Dice on the spleen at each validation, and
   ``ctseg evaluate`` of base and fine-tuned models on the CT's own grid. There is one labelled CT
   in tests/data, so validation uses the training CT: this shows the model learning the spleen,
   not how well it generalises.
2. DDP: the same spec with ``nproc`` 2 (gloo, batch 1 per process) against one process with batch 2
   (the same samples per iteration), after the same number of iterations; a second single-process
   run with another seed shows how far two equally valid runs differ (the reference for the
   tolerance). Wall times are printed side by side with their ratio.

    python benchmarks/bench_finetune.py [--iterations 80] [--ddp-iterations 30] [--patch 48]
        [--spacing 3.0] [--skip-ddp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def ctseg(*args: str, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "ctseg_gui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"ctseg {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return result, wall


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def train(folder: Path, name: str, env: dict, **values) -> tuple[list[dict], float]:
    from training_data import write_spec

    spec = write_spec(folder / f"{name}.json", **values)
    result, wall = ctseg("train", spec, "--json", env=env)
    return events(result.stdout), wall


def final_dice(run: list[dict]) -> float:
    return [e for e in run if e["event"] == "validation"][-1]["dice"]["spleen"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=80)
    parser.add_argument("--ddp-iterations", type=int, default=30)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--spacing", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--skip-ddp", action="store_true")
    args = parser.parse_args()

    from bundles import build_spleen_bundle
    from training_data import spleen_slab_case, whole_case

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "CTSEG_DATA_DIR": str(folder / "userdata")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        base = build_spleen_bundle(folder / "spleen_base", pixdim=(args.spacing,) * 3)
        case = whole_case()
        common = {
            "base_model": str(base),
            "train": [case],
            "val": [case],
            "label_map": {"1": 1},
            "batch_size": 2,
            "lr": args.lr,
            "device": "cpu",
            "seed": 0,
        }
        print(f"CPU threads: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}", flush=True)
        print(
            f"1. fine-tune: {args.iterations} iterations, patch {args.patch}^3, batch 2, "
            f"lr {args.lr}, {args.spacing} mm grid, whole abdomen CT",
            flush=True,
        )
        run, wall = train(
            folder,
            "finetune",
            env,
            **common,
            max_iterations=args.iterations,
            val_interval=max(1, args.iterations // 4),
            checkpoint_interval=max(1, args.iterations // 4),
            patch_size=[args.patch] * 3,
            run_dir="finetune-run",
            install_as="spleen-finetuned",
        )
        losses = [e["loss"] for e in run if e["event"] == "iteration"]
        tenth = max(1, len(losses) // 10)
        first, last = statistics.mean(losses[:tenth]), statistics.mean(losses[-tenth:])
        seconds = [e["sec_per_iter"] for e in run if e["event"] == "iteration"][-1]
        print(f"   wall {wall:.0f} s, {seconds:.2f} s per iteration at the end")
        print(
            f"   training loss: mean of first {tenth} iterations {first:.4f}, "
            f"of last {tenth} {last:.4f} (ratio {last / first:.2f})"
        )
        for e in run:
            if e["event"] == "validation":
                print(
                    f"   validation Dice, spleen, at iteration {e['iteration']}: "
                    f"{e['dice']['spleen']:.4f}"
                )
        cases = folder / "cases.json"
        cases.write_text(json.dumps([case]))
        result, wall = ctseg(
            "evaluate", "spleen-finetuned", cases, "--label-map", '{"1": 1}', env=env
        )
        print(f"   ctseg evaluate (CT's own grid; {wall:.0f} s, fine-tuned beside its base):")
        print("   " + result.stdout.strip().replace("\n", "\n   "), flush=True)

        if args.skip_ddp:
            return
        print(
            f"2. DDP: {args.ddp_iterations} iterations, patch 32^3, spleen box of the CT",
            flush=True,
        )
        box = spleen_slab_case(folder / "box")
        ddp_common = {
            **common,
            "train": [box],
            "val": [box],
            "max_iterations": args.ddp_iterations,
            "val_interval": args.ddp_iterations,
            "checkpoint_interval": args.ddp_iterations,
            "patch_size": [32, 32, 32],
        }
        one, one_s = train(folder, "single", env, **ddp_common, run_dir="single-run")
        other, other_s = train(
            folder, "single_seed1", env, **{**ddp_common, "seed": 1}, run_dir="seed1-run"
        )
        two, two_s = train(
            folder, "ddp", env, **{**ddp_common, "batch_size": 1, "nproc": 2}, run_dir="ddp-run"
        )
        d_one, d_other, d_two = final_dice(one), final_dice(other), final_dice(two)
        print(f"   1 process x batch 2, seed 0: Dice {d_one:.4f}  ({one_s:.0f} s)")
        print(f"   1 process x batch 2, seed 1: Dice {d_other:.4f}  ({other_s:.0f} s)")
        print(f"   2 processes x batch 1 (gloo): Dice {d_two:.4f}  ({two_s:.0f} s)")
        print(
            f"   |DDP - single| = {abs(d_two - d_one):.4f}; seed-to-seed |single - single| = "
            f"{abs(d_other - d_one):.4f}; wall time DDP / single = {two_s / one_s:.2f}"
        )


if __name__ == "__main__":
    main()
