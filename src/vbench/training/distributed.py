"""One run over several processes with DistributedDataParallel, started by torchrun.

`torchrun --nproc_per_node=N -m vbench ...` (or `torchrun ... $(which vbench) ...`) starts N
copies of vbench; torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) is
how they find each other. Without it every function here is a no-op for one process.

What the ranks share and who does what:
- one run directory: rank 0 picks the timestamp in its name and broadcasts it before Hydra
  composes the config (`agree_on_run_dir`), and only rank 0 lets Hydra write `.hydra/`;
- each rank trains on its shard of every epoch's seeded permutation (Split.batches' `shard`),
  DDP averages the gradients, so the ranks' weights stay identical;
- validation is computed by rank 0 on the whole val split and broadcast, so early stopping
  and the best epoch are one decision; the final evaluation, plots, checkpoints, history.csv
  and metrics.json are rank 0's alone (`is_main()` guards in run.py), and every rank returns
  rank 0's metrics;
- a failure on one rank ends the others: torchrun stops the whole group when a worker exits
  with an error, and only rank 0 prints.
"""

import os
from datetime import datetime

STAMP_ENV = "VBENCH_RUN_STAMP"  # the run/sweep dir timestamp every rank uses (config.yaml)
STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"


def launched() -> bool:
    """Started by torchrun, or as one of several tasks of a SLURM job (hydra/launcher=
    slurm_ddp), whose variables submitit turns into torchrun's."""
    if "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1 \
            and "SUBMITIT_FOLDER" in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export()  # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def is_main() -> bool:
    return rank() == 0


def _group():
    import torch.distributed as dist

    if not dist.is_initialized():
        import torch

        # gloo for CPU tensors, NCCL for CUDA ones: trainer.device is not known yet here.
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist


def broadcast(obj):
    """Rank 0's `obj` on every rank (a picklable value); `obj` itself for one process."""
    if world_size() == 1:
        return obj
    import torch

    box = [obj]
    _group().broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


def agree_on_run_dir(argv: list[str]) -> list[str]:
    """Before Hydra starts: one timestamp for every rank's run directory (config.yaml reads it
    from $VBENCH_RUN_STAMP), and Hydra's own files (`.hydra/`) written by rank 0 only."""
    if world_size() == 1:
        return argv
    os.environ[STAMP_ENV] = broadcast(datetime.now().strftime(STAMP_FORMAT))
    if not is_main():
        argv = [*argv, "hydra.output_subdir=null"]
        from ..core.console import console, err_console

        console.quiet = err_console.quiet = True  # one voice: rank 0's
    return argv


def device_for(device):
    """Each rank on its own GPU (LOCAL_RANK); CPU ranks share the CPU."""
    if world_size() > 1 and device.type == "cuda":
        import torch

        processes, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", "1")), torch.cuda.device_count()
        if processes > gpus:  # every rank says the same; rank 0 prints it
            from ..core.errors import VBenchError

            raise VBenchError(f"torchrun started {processes} processes on this machine, which has "
                              f"{gpus} GPU(s): use --nproc_per_node={gpus} (one process per GPU), "
                              "or trainer.device=cpu")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def wrap(model, device):
    """DistributedDataParallel around `model` under torchrun; `model` itself otherwise."""
    if world_size() == 1:
        return model
    _group()
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model):
    """The eager module inside torch.compile and DDP: what rank 0 evaluates alone (a DDP
    forward would wait for the other ranks), and without compile's CUDA graphs, whose next
    replay overwrites the logits of the last batch before the batches are put together."""
    inner = getattr(model, "_orig_mod", model)
    if world_size() == 1:
        return inner
    from torch.nn.parallel import DistributedDataParallel

    return inner.module if isinstance(inner, DistributedDataParallel) else inner


def shard() -> tuple[int, int]:
    return rank(), world_size()


def mean_over_ranks(*values: float) -> tuple[float, ...]:
    """The mean of each value over the ranks (equal shards: the whole epoch's mean)."""
    if world_size() == 1:
        return values
    import torch

    t = torch.tensor(values, dtype=torch.float64)
    _group().all_reduce(t)
    return tuple((t / world_size()).tolist())


def close(finished: bool) -> None:
    """Tear the process group down. After a run that finished, every rank first waits at a
    barrier: a rank that destroyed its group while another still sent rank 0's last broadcast
    could leave gloo's worker threads holding work at exit (SIGABRT, "terminate called without
    an active exception", and torchrun reports a finished run failed). After a failure there
    is no barrier: the other ranks may be gone, and torchrun stops the group anyway."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
