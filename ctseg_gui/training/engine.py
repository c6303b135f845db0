"""The fine-tuning loop: MONAI data, loss and metrics; checkpoints, cancel, resume and DDP.

One call of :func:`run_training` is one process of a run (``ctseg train``; under torchrun one per
rank). Rank 0 validates, writes checkpoints and events and exports the result; all ranks agree
after every iteration whether to stop (cancel or early stop), so their collectives stay in step.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from pathlib import Path

from ctseg_gui.core.errors import CtsegError, CtsegWarning
from ctseg_gui.training.checkpoint import (
    BEST,
    CHECKPOINT,
    atomic_save,
    load_checkpoint,
    plain_state,
)
from ctseg_gui.training.events import EventLog
from ctseg_gui.training.spec import TrainSpec

SPEC_COPY = "spec.json"


class _StopFlag:
    """Set by SIGTERM / SIGINT; the loop checkpoints and exits at the next iteration boundary."""

    def __init__(self) -> None:
        self.set = False
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.set = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (1 process without it)."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _device(spec: TrainSpec, local_rank: int):
    import torch

    if spec.device == "cuda" and not torch.cuda.is_available():
        raise CtsegError("device 'cuda' was asked for, but no CUDA GPU is available")
    if spec.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cache_estimate(sizes, spacings, target, cache_rate: float) -> int:
    """Bytes the data cache holds: image and label as float32 on the training grid."""
    total = 0.0
    for size, spacing in zip(sizes, spacings, strict=True):
        scale = 1.0
        if target:
            scale = math.prod(s / t for s, t in zip(spacing, target, strict=True))
        total += math.prod(size) * scale * 8
    return int(total * cache_rate)


def _optimizer(spec: TrainSpec, parameters):
    import torch

    if spec.optimizer == "Novograd":
        from monai.optimizers import Novograd

        return Novograd(parameters, lr=spec.lr, weight_decay=spec.weight_decay)
    kind = torch.optim.AdamW if spec.optimizer == "AdamW" else torch.optim.Adam
    return kind(parameters, lr=spec.lr, weight_decay=spec.weight_decay)


def _schedule(spec: TrainSpec, optimizer):
    import torch

    if spec.lr_schedule == "cosine":
        from monai.optimizers import WarmupCosineSchedule

        return WarmupCosineSchedule(optimizer, warmup_steps=0, t_total=spec.max_iterations)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)


def prepare_data(spec: TrainSpec, base):
    """Checked ``(train, val, value_map, sizes, spacings)`` for a spec (no voxels loaded)."""
    from ctseg_gui.training.datasets import check_cases, split_cases, value_map

    train, val = list(spec.train), list(spec.val)
    if not val and spec.val_fraction > 0:
        train, val = split_cases(train, spec.val_fraction, spec.seed)
    values, sizes = check_cases(train + val)
    mapping = value_map(values, base.classes, spec.label_map)
    return train, val, mapping, sizes


def estimate(spec: TrainSpec) -> dict:
    """What a run would use, before it starts (``ctseg train --check``; the panel shows it).

    Checks the model and every case (grids, label values) without loading voxels into a cache;
    returns ``{"train_cases", "val_cases", "classes", "patch_size", "label_map", "cache_bytes",
    "available_bytes", "warnings"}``.
    """
    from ctseg_gui.training.model import resolve_base, target_spacing

    base = resolve_base(spec.base_model, spec.variant)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CtsegWarning)
        train, val, mapping, sizes = prepare_data(spec, base)
    cache = cache_estimate(sizes, _spacings(train + val), target_spacing(base), spec.cache_rate)
    return {
        "train_cases": len(train),
        "val_cases": len(val),
        "classes": {str(k): v for k, v in base.classes.items() if k != 0},
        "patch_size": list(spec.patch_size or base.roi),
        "label_map": {str(k): v for k, v in mapping.items()},
        "cache_bytes": cache * spec.nproc,
        "available_bytes": _available_bytes(),
        "warnings": [str(w.message) for w in caught],
    }


def _spacings(cases) -> list:
    from ctseg_gui.io.images import read_header

    return [tuple(read_header(c["image"]).GetSpacing()) for c in cases]


def run_training(spec: TrainSpec, *, resume: bool = False, json_lines: bool = False, human=None):
    """Run (or resume) one fine-tuning run in this process; returns the ``done`` event or None.

    Raises
    ------
    CtsegError
        Bad data, spec or model; an existing run folder without ``resume``; nothing to resume.
    """
    import torch
    import torch.distributed as dist

    rank, world, local_rank = _world()
    run_dir = Path(spec.run_dir)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if spec.device != "cpu" and torch.cuda.is_available() else "gloo"
        from datetime import timedelta

        # the other ranks wait in a collective while rank 0 validates: allow long validations
        dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
    run_dir.mkdir(parents=True, exist_ok=True)
    log = EventLog(run_dir, json_lines, human, enabled=rank == 0)
    stop = _StopFlag()
    stop.install()
    try:
        if spec.device == "cpu" or not torch.cuda.is_available():
            return _run(spec, resume, log, stop, rank, world, local_rank)
        from ctseg_gui.training.gpu_claim import claim_gpu

        with claim_gpu(run_dir, f"cuda:{local_rank}"):
            return _run(spec, resume, log, stop, rank, world, local_rank)
    except CtsegError as error:
        log.emit("error", message=str(error))
        raise
    finally:
        stop.restore()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(spec, resume, log, stop, rank, world, local_rank):  # noqa: C901 - one loop, read in order
    import json

    import torch
    import torch.distributed as dist
    from monai.data import CacheDataset, DataLoader, list_data_collate
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    from ctseg_gui.inference.manager import installed_path
    from ctseg_gui.training.model import (
        build_network,
        build_transforms,
        resolve_base,
        target_spacing,
    )
    from ctseg_gui.training.validate import validate

    run_dir = Path(spec.run_dir)
    state = None
    if resume:
        state = load_checkpoint(run_dir)
    elif (run_dir / CHECKPOINT).exists():
        raise CtsegError(
            "already holds a run; continue it with --resume or pick a new run_dir", run_dir
        )
    if rank == 0 and not resume:
        (run_dir / "events.jsonl").unlink(missing_ok=True)
        (run_dir / SPEC_COPY).write_text(json.dumps(spec.to_json(), indent=1))
    base = resolve_base(spec.base_model, spec.variant)
    if spec.install_as and installed_path(spec.install_as) is not None:
        raise CtsegError(
            f"model {spec.install_as} is already installed; choose another install_as "
            "(or remove it with `ctseg models remove`)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CtsegWarning)
        train, val, mapping, sizes = prepare_data(spec, base)
    for warning in caught:
        log.emit("warning", message=str(warning.message))
        if rank == 0:
            warnings.warn(str(warning.message), CtsegWarning, stacklevel=2)
    patch = spec.patch_size or base.roi
    device = _device(spec, local_rank)
    start = int(state["iteration"]) if state else 0
    if state:
        log.truncate_after(start)
    available = _available_bytes()
    cache = cache_estimate(sizes, _spacings(train + val), target_spacing(base), spec.cache_rate)
    log.emit(
        "started",
        iteration=start,
        max_iterations=spec.max_iterations,
        resumed=bool(state),
        device=str(device),
        nproc=world,
        train_cases=len(train),
        val_cases=len(val),
        classes={str(k): v for k, v in base.classes.items() if k != 0},
        patch_size=list(patch),
        cache_bytes=cache,
        available_bytes=available,
    )
    if available is not None and cache * world > 0.8 * available:
        message = (
            f"the data cache needs about {cache * world / 2**30:.1f} GiB but only "
            f"{available / 2**30:.1f} GiB of memory is free: lower cache_rate"
        )
        log.emit("warning", message=message)
        if rank == 0:
            warnings.warn(message, CtsegWarning, stacklevel=2)

    set_determinism(seed=spec.seed + rank)
    train_tf, val_tf = build_transforms(base, patch, spec.batch_size, mapping)
    # Every rank gets the same number of cases (cases repeat when there are fewer than ranks), so
    # all ranks run the same number of iterations per epoch.
    per_rank = -(-len(train) // world)
    shard = [train[(rank + i * world) % len(train)] for i in range(per_rank)]
    train_ds = CacheDataset(shard, train_tf, cache_rate=spec.cache_rate, progress=False)
    loader = DataLoader(
        train_ds,
        batch_size=1,
        shuffle=True,
        num_workers=spec.num_workers,
        collate_fn=list_data_collate,
        generator=torch.Generator().manual_seed(spec.seed + rank),
    )
    val_ds = (
        CacheDataset(val, val_tf, cache_rate=spec.cache_rate, progress=False)
        if val and rank == 0
        else None
    )

    network = build_network(base, spec.init if not state else "random").to(device)
    optimizer = _optimizer(spec, network.parameters())
    schedule = _schedule(spec, optimizer)
    use_amp = spec.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    epoch, best, best_at, stale = 0, -1.0, 0, 0
    if state:
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        epoch, best, best_at, stale = (
            state["epoch"],
            state["best"],
            state["best_at"],
            state["stale"],
        )
    if world > 1:
        network = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)

    def checkpoint(iteration: int) -> Path:
        return atomic_save(
            {
                "iteration": iteration,
                "epoch": epoch,
                "network": plain_state(network),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict(),
                "best": best,
                "best_at": best_at,
                "stale": stale,
                "spec": spec.to_json(),
            },
            run_dir / CHECKPOINT,
        )

    iteration, seconds, last_val_s, cancelled, early = start, None, 0.0, False, False
    remaining_vals = lambda i: (spec.max_iterations - i) // spec.val_interval  # noqa: E731
    while iteration < spec.max_iterations and not cancelled:
        epoch += 1
        # A new seed per epoch from the iteration count, so a resumed run draws fresh crops.
        train_tf.set_random_state(seed=(spec.seed * 1_000_003 + iteration * 101 + rank) % 2**31)
        loader.generator.manual_seed(spec.seed + iteration + rank)
        for batch in loader:
            began = time.perf_counter()
            images = batch["image"].to(device)
            labels = batch["label"].to(device)
            with torch.autocast(device.type, enabled=use_amp):
                loss = loss_fn(network(images), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            loss = loss.detach().float().cpu()
            if world > 1:  # report the mean over the ranks: the loss of the whole batch
                dist.all_reduce(loss, op=dist.ReduceOp.SUM)
                loss = loss / world
            schedule.step()
            iteration += 1
            took = time.perf_counter() - began
            seconds = took if seconds is None else 0.8 * seconds + 0.2 * took
            left = spec.max_iterations - iteration
            log.emit(
                "iteration",
                iteration=iteration,
                epoch=epoch,
                loss=float(loss),
                lr=float(lr),
                sec_per_iter=seconds,
                eta_s=left * seconds + remaining_vals(iteration) * last_val_s,
            )
            early = False
            validated = False
            if val_ds is not None and (
                iteration % spec.val_interval == 0 or iteration == spec.max_iterations
            ):
                began = time.perf_counter()
                dice, mean = validate(
                    getattr(network, "module", network), val_ds, base, patch, device, use_amp
                )
                last_val_s = time.perf_counter() - began
                log.emit("validation", iteration=iteration, dice=dice, mean_dice=mean)
                validated = True
                if not math.isnan(mean) and mean > best:
                    best, best_at, stale = mean, iteration, 0
                    atomic_save(plain_state(network), run_dir / BEST)
                else:
                    stale += 1
                early = bool(spec.early_stop) and stale >= spec.early_stop
            flags = torch.tensor([float(stop.set), float(early)])
            if world > 1:
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            cancelled, early = bool(flags[0]), bool(flags[1])
            done = iteration >= spec.max_iterations or early
            if rank == 0 and (
                iteration % spec.checkpoint_interval == 0 or validated or cancelled or done
            ):
                log.emit("checkpoint", iteration=iteration, path=str(checkpoint(iteration)))
            if cancelled or done:
                break
        if early:
            break
    if cancelled:
        log.emit("cancelled", iteration=iteration, path=str(run_dir / CHECKPOINT))
        return None
    if rank != 0:
        return None
    from ctseg_gui.training.export import export_run

    bundle, model_id = export_run(spec, base, run_dir, mapping, train, val, iteration)
    return log.emit("done", iteration=iteration, bundle=str(bundle), model_id=model_id)
