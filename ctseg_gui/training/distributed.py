"""Start a run's ranks through torch's own launcher (torch.distributed.run's elastic agent).

The entrypoint is the app's own ``ctseg train`` command (:func:`ctseg_gui.launch.self_command`),
so the frozen app starts itself once per rank as it starts its worker; each rank finds RANK,
WORLD_SIZE and the rendezvous address in its environment and joins the process group (gloo on the
CPU, NCCL on GPUs). SIGTERM / SIGINT to the launcher reach every rank, which agree on the
iteration to stop at, checkpoint and exit.
"""

from __future__ import annotations

import os
import uuid

from ctseg_gui.core.errors import CtsegError


def is_rank() -> bool:
    """Whether this process is one rank of a launched run (torchrun set its environment)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch_ranks(nproc: int, arguments: list[str], run_dir: str | None = None) -> None:
    """Run ``ctseg train <arguments>`` as ``nproc`` DDP ranks on this machine and wait.

    Raises
    ------
    CtsegError
        A rank failed (its message is in its own output); the exit code is reported.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from ctseg_gui.launch import self_command

    command = self_command("train", *arguments)
    if "OMP_NUM_THREADS" not in os.environ:
        # torchrun's own rule: share the cores between the ranks instead of oversubscribing them
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"ctseg-train-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    try:
        elastic_launch(config, entrypoint=command[0])(*command[1:])
    except SignalException as error:
        # SIGTERM / SIGINT: the agent has passed it on to the ranks, which checkpoint and stop
        from ctseg_gui.training.events import read_events

        last = read_events(run_dir)[-1:] if run_dir else []
        if not (last and last[0]["event"] == "cancelled"):
            raise CtsegError(f"training stopped by signal {error.sigval.name}") from None
    except ChildFailedError as error:
        failures = error.failures
        codes = sorted({f.exitcode for f in failures.values()})
        raise CtsegError(
            f"{len(failures)} of {nproc} training processes failed (exit codes {codes}); "
            "see their messages above"
        ) from None
